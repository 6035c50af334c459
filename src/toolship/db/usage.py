"""What the other replicas' tasks hold, per owner: the quotas' view across replicas.

Each replica keeps its own tally of what its tasks run and how many wait (the engine
core's, exact and cheap); quotas are a user's across the whole service, so each
replica adds what the tasks of the others hold, read here from the tasks themselves
(their ``state``, ``replica`` and resources columns) at each heartbeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, case, func, select
from sqlalchemy.sql import ColumnElement

from toolship.db.schema import tasks
from toolship.states import TaskState

__all__ = ["HeldElsewhere", "held_elsewhere"]

_RUNNING = [TaskState.INITIALIZING.value, TaskState.RUNNING.value]
_COUNTED = [TaskState.QUEUED.value, *_RUNNING]


@dataclass(frozen=True, slots=True)
class HeldElsewhere:
    """One owner's tasks on other replicas: what the running ones hold, how many wait."""

    owner: str
    group: str | None
    cpus: float
    memory_gb: float
    gpus: int
    queued: int


def held_elsewhere(engine: Engine, me: str) -> list[HeldElsewhere]:
    """Per (owner, group), the unfinished tasks of every replica but ``me``."""
    running = tasks.c.state.in_(_RUNNING)

    def held(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.sum(case((running, column), else_=0))

    query = (
        select(
            tasks.c.owner,
            tasks.c.owner_group,
            held(tasks.c.cpus),
            held(tasks.c.memory_gb),
            held(tasks.c.gpus),
            func.sum(case((tasks.c.state == TaskState.QUEUED.value, 1), else_=0)),
        )
        .where(
            and_(
                tasks.c.state.in_(_COUNTED),
                tasks.c.owner.is_not(None),
                tasks.c.replica.is_not(None),
                tasks.c.replica != me,
            )
        )
        .group_by(tasks.c.owner, tasks.c.owner_group)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        HeldElsewhere(o, g, float(cpus or 0), float(mem or 0), int(gpus or 0), int(queued or 0))
        for o, g, cpus, mem, gpus, queued in rows
    ]
