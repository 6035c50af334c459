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

        ``reader``: the owner whose tasks alone may answer (None: anyone's), so that
        nobody is answered with a result of a task they could not read.
        """
        query = (
            select(tasks.c.id)
            .select_from(ce.join(tasks, tasks.c.seq == ce.c.task_seq))
            .where(ce.c.key == key, tasks.c.state == TaskState.COMPLETE.value)
        )
        if reader is not None:
            query = query.where(tasks.c.owner == reader)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else str(found)

    def list(self, limit: int = 100, *, owner: str | None = None) -> list[CacheEntry]:
        """The newest entries first (``owner``: only those of that owner's tasks)."""
        query = (
            select(ce.c.key, ce.c.created, tasks.c.id, tasks.c.name)
            .select_from(ce.join(tasks, tasks.c.seq == ce.c.task_seq))
            .order_by(ce.c.created.desc(), ce.c.key)
            .limit(limit)
        )
        if owner is not None:
            query = query.where(tasks.c.owner == owner)
        with self.engine.connect() as conn:
            return [
                CacheEntry(key=r.key, task_id=r.id, task_name=r.name, created=r.created)
                for r in conn.execute(query)
            ]

    def delete(self, key: str, *, owner: str | None = None) -> bool:
        """Forget ``key`` (the task and its outputs stay); whether it was there.

        ``owner``: only if its task is that owner's (else it is left, as if not there).
        """
        query = delete(ce).where(ce.c.key == key)
        if owner is not None:
            mine = select(tasks.c.seq).where(tasks.c.owner == owner)
            query = query.where(ce.c.task_seq.in_(mine))
        with self.engine.begin() as conn:
            return bool(conn.execute(query).rowcount)
