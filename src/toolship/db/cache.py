"""The result cache's keys in SQL: which COMPLETE task answers a key."""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert, select

from toolship.db.schema import cache_entries as ce
from toolship.db.schema import tasks
from toolship.states import TaskState
from toolship.supply.cache import CacheEntry
from toolship.timeutil import now_rfc3339

__all__ = ["CacheStore"]


class CacheStore:
    """Keys of COMPLETE tasks (``supply.cache.cache_key``): one task per key, the latest.

    A task deleted from the store takes its key with it (ON DELETE CASCADE).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, key: str, task_id: str) -> None:
        """Store ``key`` for the COMPLETE task ``task_id``; a later task replaces an earlier."""
        seq = select(tasks.c.seq).where(tasks.c.id == task_id).scalar_subquery()
        with self.engine.begin() as conn:  # one transaction: portable, no upsert dialect
            conn.execute(delete(ce).where(ce.c.key == key))
            conn.execute(insert(ce).values(key=key, task_seq=seq, created=now_rfc3339()))

    def lookup(self, key: str, *, reader: str | None = None) -> str | None:
        """The COMPLETE task stored for ``key`` that ``reader`` may read, or None.

        ``reader``: who asks.  toolship has one tenant today (every caller reads every
        task), so it filters nothing yet; owners (issue 17) are checked here, so that
        nobody is answered with a result of a task they could not read.
        """
        del reader  # one tenant: see the docstring
        query = (
            select(tasks.c.id)
            .select_from(ce.join(tasks, tasks.c.seq == ce.c.task_seq))
            .where(ce.c.key == key, tasks.c.state == TaskState.COMPLETE.value)
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else str(found)

    def list(self, limit: int = 100) -> list[CacheEntry]:
        """The newest entries first."""
        query = (
            select(ce.c.key, ce.c.created, tasks.c.id, tasks.c.name)
            .select_from(ce.join(tasks, tasks.c.seq == ce.c.task_seq))
            .order_by(ce.c.created.desc(), ce.c.key)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                CacheEntry(key=r.key, task_id=r.id, task_name=r.name, created=r.created)
                for r in conn.execute(query)
            ]

    def delete(self, key: str) -> bool:
        """Forget ``key`` (the task and its outputs stay); whether it was there."""
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(ce).where(ce.c.key == key)).rowcount)
