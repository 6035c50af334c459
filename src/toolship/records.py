"""The records that cross the layers: what the engine hands a backend, and how it hears back.

A :class:`Job` is everything one attempt needs (built by the engine, run by a
backend's worker, here or on a compute node); a :class:`Reporter` is how the
worker persists its progress.  They live below the engine, the backends and the
worker so that each of them can name them without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from toolship.models import Task
from toolship.options import TaskOptions
from toolship.states import TaskState

__all__ = ["Job", "Reporter"]


class Reporter(Protocol):
    async def update(
        self,
        state: TaskState | None,
        attempt: dict[str, Any],
        runtime: dict[str, Any],
        *,
        wait: bool = True,
    ) -> bool:
        """Persist the attempt's log and runtime record, moving to ``state`` if given.

        Returns False when the state change is refused (the task was
        cancelled meanwhile); the worker then stops.  With ``wait=False`` the
        reporter may return before the report is durable (and True): a refusal
        then shows in the next waited report, which also makes this one durable.
        """
        ...


@dataclass
class Job:
    task_id: str
    task: Task
    options: TaskOptions
    attempt: dict[str, Any] | None = None  # the TES TaskLog of this attempt, when resuming
    runtime: dict[str, Any] = field(default_factory=dict)
    attempt_number: int = 1
    # Per-task credentials for staging; never stored in the task record or logged.
    credentials: dict[str, str] = field(default_factory=dict)
