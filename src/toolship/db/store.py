"""The only module that issues SQL.  Everything is SQLAlchemy Core, synchronous.

SQLite calls take tens of microseconds, so the async server calls the store
directly instead of hopping to a thread pool.  State changes are conditional
updates (``WHERE state IN (allowed sources)``) so the transition table in
:mod:`toolship.states` holds even if two code paths race.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import itertools
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from pydantic import TypeAdapter
from pydantic_core import to_json
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Row,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.dml import Update

from toolship.db.events import append_events
from toolship.db.listing import ListFilter, counts_query, decode_token, encode_token, page_query
from toolship.db.schema import attempt_images, batches, task_tags, tasks
from toolship.db.sealing import NONE, Sealer, is_plain
from toolship.errors import NotFound
from toolship.models import TaskLog
from toolship.options import OptionDefaults
from toolship.records import RuntimeRecord
from toolship.states import (
    ACTIVE_STATES,
    TaskState,
    allowed_sources,
    check_transition,
    is_final,
)
from toolship.supply.images import ImageUse, image_uses

__all__ = [
    "BatchRow",
    "Change",
    "ListFilter",
    "Page",
    "Store",
    "TaskBrief",
    "TaskRow",
    "TaskSummary",
    "no_batch",
    "no_task",
]


@dataclass(frozen=True, slots=True)
class TaskSummary:
    id: str
    state: TaskState


@dataclass(frozen=True, slots=True)
class TaskBrief:
    """A line of the web UI's task list: no spec, no logs (cheap at a million rows)."""

    id: str
    state: TaskState
    name: str | None
    creation_time: str
    owner: str | None
    batch_id: str | None


@dataclass(slots=True)
class TaskRow:
    seq: int
    id: str
    state: TaskState
    name: str | None
    creation_time: str
    priority: int
    cpus: int
    memory_gb: float
    gpus: int
    spec: dict[str, Any]
    # What the server decided for what the task left out; None: a row no admission
    # decided for (stored before 0005 without a runtime), which takes today's defaults.
    resolved: OptionDefaults | None = None
    logs: list[TaskLog] = field(default_factory=list)  # one TES TaskLog per attempt
    runtime: RuntimeRecord = field(default_factory=RuntimeRecord)  # of the latest attempt
    cancel_requested: bool = False
    # Credentials of a task being created; a stored task's are in ``sealed`` (see secrets_of).
    secrets: dict[str, str] = field(default_factory=dict)
    batch_id: str | None = None
    sealed: str = ""
    owner: str | None = None  # who created it (None: before users, migration 0008)
    owner_group: str | None = None
    replica: str | None = None  # the replica that runs it (None: stored before 0009)


@dataclass(slots=True)
class BatchRow:
    id: str
    name: str | None
    kind: str
    creation_time: str
    size: int
    max_parallel: int | None = None
    priority: int = 0
    deadline: float | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None
    owner_group: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What one attempt reported since the last write: state changes in order, latest records."""

    task_id: str
    states: tuple[TaskState, ...]
    logs: list[TaskLog]
    runtime: RuntimeRecord


@dataclass(frozen=True, slots=True)
class Page:
    items: list[TaskSummary] | list[TaskRow]
    next_token: str | None


def no_task(task_id: str) -> NotFound:
    """The 404 of a task that is not there, or that the caller may not see (the same)."""
    return NotFound(f"no task with id {task_id!r}")


def no_batch(batch_id: str) -> NotFound:
    """The 404 of a batch that is not there, or that the caller may not see (the same)."""
    return NotFound(f"no batch with id {batch_id!r}")


def _sqlite_pragmas(
    dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry, *, busy_timeout: float
) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
    # Deleted and overwritten content is zeroed, so a wiped credential leaves no copy in
    # freed pages (the WAL's copies go with a checkpoint after the wipe).
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


def make_engine(url: str, busy_timeout: float = 10.0) -> Engine:
    """The engine of ``url``; on SQLite a write waits ``busy_timeout`` s for another's lock."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _private_database(Path(path))
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(
            engine, "connect", functools.partial(_sqlite_pragmas, busy_timeout=busy_timeout)
        )
        return engine
    return create_engine(url, pool_pre_ping=True)


def _private_database(path: Path) -> None:
    """The database file, and so its WAL and shared memory (SQLite copies its mode), 0600."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            part.chmod(0o600)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to the newest Alembic revision (tests: to an older one)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


_SUMMARY_COLS = (tasks.c.seq, tasks.c.id, tasks.c.state)
_ROW_COLS = (
    tasks.c.seq,
    tasks.c.id,
    tasks.c.state,
    tasks.c.name,
    tasks.c.creation_time,
    tasks.c.priority,
    tasks.c.cpus,
    tasks.c.memory_gb,
    tasks.c.gpus,
    tasks.c.spec,
    tasks.c.resolved,
    tasks.c.cancel_requested,
    tasks.c.batch_id,
    tasks.c.owner,
    tasks.c.owner_group,
    tasks.c.replica,
)

_FULL_COLS = (*_ROW_COLS, tasks.c.logs, tasks.c.runtime, tasks.c.secrets)
_BRIEF_COLS = (
    tasks.c.seq,
    tasks.c.id,
    tasks.c.state,
    tasks.c.name,
    tasks.c.creation_time,
    tasks.c.owner,
    tasks.c.batch_id,
)


_GET_FULL = select(*_FULL_COLS).where(tasks.c.id == bindparam("b_id"))
_GET_ROW = select(*_ROW_COLS).where(tasks.c.id == bindparam("b_id"))
_GET_STATE = select(tasks.c.state).where(tasks.c.id == bindparam("b_id"))


def _dumps(value: Any) -> str:
    # pydantic-core's serialiser: the same compact JSON as json.dumps, ~6x faster (a
    # 10 000-member batch serialises 10 000 specs).  A TES log leaves out what is unset.
    return to_json(value, exclude_none=True).decode()


def _dumps_runtime(runtime: RuntimeRecord) -> str:
    # What a record leaves at its default is left out: it loads back the same.
    return runtime.model_dump_json(exclude_defaults=True)


_LOGS = TypeAdapter(list[TaskLog])
_RESOLVED = TypeAdapter(OptionDefaults)


# Statements built once: building and cache-keying a Core statement costs more than running it.
_SAVE = (
    update(tasks)
    .where(tasks.c.id == bindparam("b_id"))
    .values(logs=bindparam("b_logs"), runtime=bindparam("b_runtime"))
)


_CANCEL_QUEUED = (
    update(tasks)
    .where(and_(tasks.c.id == bindparam("b_id"), tasks.c.state == TaskState.QUEUED.value))
    .values(state=TaskState.CANCELED.value, logs=bindparam("b_logs"), secrets="{}")
)


@functools.cache
def _move(first: TaskState, last: TaskState) -> Update:
    """Enter ``last`` from any state that may enter ``first`` (a checked chain of edges)."""
    values: dict[str, Any] = {
        "state": last.value,
        "logs": bindparam("b_logs"),
        "runtime": bindparam("b_runtime"),
    }
    if is_final(last):
        values["secrets"] = "{}"  # credentials live no longer than the task
    # OR of equalities, not IN (…): an IN list of values is expanded at every execution.
    sources = or_(*(tasks.c.state == v for v in sorted(s.value for s in allowed_sources(first))))
    return update(tasks).where(tasks.c.id == bindparam("b_id"), sources).values(**values)


def _row(r: Row[Any] | Any, with_logs: bool) -> TaskRow:
    return TaskRow(
        seq=r.seq,
        id=r.id,
        state=TaskState(r.state),
        name=r.name,
        creation_time=r.creation_time,
        priority=r.priority,
        cpus=r.cpus,
        memory_gb=r.memory_gb,
        gpus=r.gpus,
        spec=json.loads(r.spec),
        resolved=_RESOLVED.validate_json(r.resolved) if r.resolved else None,
        logs=_LOGS.validate_json(r.logs) if with_logs else [],
        runtime=RuntimeRecord.model_validate_json(r.runtime) if with_logs else RuntimeRecord(),
        cancel_requested=bool(r.cancel_requested),
        batch_id=r.batch_id,
        sealed=r.secrets if with_logs else "",
        owner=r.owner,
        owner_group=r.owner_group,
        replica=r.replica,
    )


# Statements a task's end runs, built once (building one costs more than running it).
_SEQ_OF = select(tasks.c.seq).where(tasks.c.id == bindparam("b_id"))
_FORGET_IMAGES = delete(attempt_images).where(attempt_images.c.task_seq == bindparam("b_seq"))
_HOLDING = (
    select(tasks.c.id)
    .where(tasks.c.id.in_(bindparam("b_ids", expanding=True)), tasks.c.secrets != NONE)
    .limit(1)
)
# One task (most final writes): no IN list to expand, which costs a compile step per call.
_HOLDING_ONE = select(tasks.c.id).where(tasks.c.id == bindparam("b_id"), tasks.c.secrets != NONE)


def _record_attempt_images(conn: Connection, task_id: str, logs: Sequence[TaskLog]) -> None:
    """Index which image every executor of every attempt ran (written once, at the end)."""
    uses = [(n, u) for n, log in enumerate(logs, 1) for u in image_uses(log.metadata)]
    if uses:
        seq = conn.execute(_SEQ_OF, {"b_id": task_id}).scalar_one()
        conn.execute(_FORGET_IMAGES, {"b_seq": seq})
        _insert_images(conn, seq, uses)


def _insert_images(conn: Connection, seq: int, uses: Sequence[tuple[int, ImageUse]]) -> None:
    rows = [
        {"task_seq": seq, "attempt": n, "executor": u.executor, "image": u.image,
         "digest": u.digest, "image_id": u.image_id}
        for n, u in uses
    ]  # fmt: skip
    if rows:
        conn.execute(_INSERT_IMAGE, rows)


_INSERT_IMAGE = insert(attempt_images)
_INSERT_ONE = insert(tasks).returning(tasks.c.seq)  # CreateTask's statement


class Store:
    """Tasks and batches in SQL: the one object that reads and writes them.

    Every query lives here, so the engine, the API and the reports see the same
    rows, and a change of schema touches one module.  Rows come back as plain
    dataclasses holding typed records (the attempts' TES logs, the latest
    attempt's :class:`~toolship.records.RuntimeRecord`); the task document
    itself stays the JSON it was stored as, because the API renders it as it is
    and the engine validates it once, when it starts an attempt.  Methods are
    synchronous and short (one transaction each, batched where a caller has many
    rows), and every state change is a conditional update checked against the
    transition table, so two code paths that race cannot break it.  Credentials
    are sealed at rest and wiped (with the WAL checkpointed) when a task ends.
    """

    def __init__(self, engine: Engine, sealer: Sealer | None = None) -> None:
        self.engine = engine
        # Without a key file (tests, tools) credentials live as long as this process.
        self.sealer = sealer or Sealer.ephemeral()

    @classmethod
    def open(cls, url: str, *, sealer: Sealer | None = None, busy_timeout: float = 10.0) -> Store:
        engine = make_engine(url, busy_timeout)
        migrate(engine)
        store = cls(engine, sealer)
        store._seal_plain()
        return store

    def _seal_plain(self) -> None:
        """Seal the credentials an older toolship stored in plain text."""
        query = select(tasks.c.id, tasks.c.secrets).where(tasks.c.secrets.like("{%"))
        with self.engine.begin() as conn:
            plain = [(r.id, r.secrets) for r in conn.execute(query) if is_plain(r.secrets)]
            for task_id, text in plain:
                sealed = self.sealer.seal(json.loads(text))
                conn.execute(update(tasks).where(tasks.c.id == task_id).values(secrets=sealed))
        if plain:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Move the WAL into the database and empty it: no old page (or credential) stays."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def secrets_of(self, row: TaskRow) -> dict[str, str]:
        """The task's credentials, opened now (for the worker that stages its files)."""
        return dict(row.secrets) if row.secrets else self.sealer.open(row.sealed)

    def secrets(self, task_id: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            sealed = conn.execute(select(tasks.c.secrets).where(tasks.c.id == task_id)).scalar()
        return self.sealer.open(sealed or NONE)

    def _holding(self, conn: Connection, task_ids: Sequence[str]) -> bool:
        """Do any of these tasks still hold credentials (that a final state wipes)?"""
        if len(task_ids) == 1:
            return conn.execute(_HOLDING_ONE, {"b_id": task_ids[0]}).first() is not None
        for start in range(0, len(task_ids), 500):
            chunk = list(task_ids[start : start + 500])
            if conn.execute(_HOLDING, {"b_ids": chunk}).first() is not None:
                return True
        return False

    def close(self) -> None:
        self.engine.dispose()

    # --- writes -----------------------------------------------------------

    def insert_tasks(
        self,
        rows: Sequence[TaskRow],
        batch: BatchRow | None = None,
        *,
        events: Sequence[dict[str, str]] = (),
    ) -> None:
        """Insert new tasks (and their tags, their batch, the events that say who created
        them: see ``db.events.event_row``) in one transaction."""
        if not rows:
            return
        values = [
            {
                "id": row.id,
                "state": row.state.value,
                "name": row.name,
                "creation_time": row.creation_time,
                "priority": row.priority,
                "cpus": row.cpus,
                "memory_gb": row.memory_gb,
                "gpus": row.gpus,
                "spec": _dumps(row.spec),
                "resolved": None if row.resolved is None else _dumps(row.resolved),
                "logs": _dumps(row.logs) if row.logs else "[]",
                "runtime": _dumps_runtime(row.runtime),
                "secrets": self.sealer.seal(row.secrets),
                "batch_id": row.batch_id,
                "owner": row.owner,
                "owner_group": row.owner_group,
                "replica": row.replica,
            }
            for row in rows
        ]
        with self.engine.begin() as conn:
            if batch is not None:
                conn.execute(
                    insert(batches).values(
                        id=batch.id,
                        name=batch.name,
                        kind=batch.kind,
                        creation_time=batch.creation_time,
                        size=batch.size,
                        max_parallel=batch.max_parallel,
                        priority=batch.priority,
                        deadline=batch.deadline,
                        spec=_dumps(batch.spec),
                        owner=batch.owner,
                        owner_group=batch.owner_group,
                    )
                )
            if len(rows) == 1:
                seqs = conn.execute(_INSERT_ONE, values).scalars()
                rows[0].seq = int(next(iter(seqs)))
            else:
                # executemany without RETURNING is one fast statement; an ordered RETURNING
                # would be a round trip per row.  The sequence numbers are read back by id.
                conn.execute(insert(tasks), values)
                seq_of: dict[str, int] = {}
                for start in range(0, len(rows), 500):
                    ids = [row.id for row in rows[start : start + 500]]
                    query = select(tasks.c.id, tasks.c.seq).where(tasks.c.id.in_(ids))
                    seq_of.update({r.id: int(r.seq) for r in conn.execute(query)})
                for row in rows:
                    row.seq = seq_of[row.id]
            tag_rows = [
                {"task_seq": row.seq, "key": k, "value": v}
                for row in rows
                for k, v in (row.spec.get("tags") or {}).items()
            ]
            if tag_rows:
                conn.execute(insert(task_tags), tag_rows)
            if events:
                append_events(conn, events)

    def transition(
        self,
        task_id: str,
        new: TaskState,
        *,
        logs: list[TaskLog] | None = None,
        runtime: RuntimeRecord | None = None,
    ) -> bool:
        """Move a task to ``new`` if the state machine allows it from its current state.

        Returns False (and changes nothing) when the task is in a state that
        cannot reach ``new`` — e.g. it was cancelled meanwhile.
        """
        values: dict[str, Any] = {"state": new.value}
        if is_final(new):
            values["secrets"] = "{}"  # credentials live no longer than the task
        if logs is not None:
            values["logs"] = _dumps(logs)
        if runtime is not None:
            values["runtime"] = _dumps_runtime(runtime)
        sources = [s.value for s in allowed_sources(new)]
        with self.engine.begin() as conn:
            wipe = is_final(new) and self._holding(conn, [task_id])
            result = conn.execute(
                update(tasks)
                .where(and_(tasks.c.id == task_id, tasks.c.state.in_(sources)))
                .values(**values)
            )
            if result.rowcount == 1 and is_final(new) and logs is not None:
                _record_attempt_images(conn, task_id, logs)
        if wipe:
            self._checkpoint()
        return result.rowcount == 1

    def apply(self, changes: Sequence[Change]) -> list[bool]:
        """Write many attempts' reports in one transaction; per change, were its moves allowed?

        A change's states form a chain checked against the transition table, applied
        as one conditional update from the states that may enter its first.  When that
        is refused (e.g. the task was cancelled meanwhile) each state is tried on its
        own, in order, so a later allowed one (CANCELED) still lands; the log and
        runtime record are kept either way.
        """
        results: list[bool] = []
        plain: list[dict[str, str]] = []
        ending = [ch.task_id for ch in changes if ch.states and is_final(ch.states[-1])]
        with self.engine.begin() as conn:
            wipe = bool(ending) and self._holding(conn, ending)
            for ch in changes:
                params = {
                    "b_id": ch.task_id,
                    "b_logs": _dumps(ch.logs),
                    "b_runtime": _dumps_runtime(ch.runtime),
                }
                if not ch.states:
                    plain.append(params)
                    results.append(True)
                    continue
                for before, after in itertools.pairwise(ch.states):
                    check_transition(before, after)
                first, last = ch.states[0], ch.states[-1]
                if conn.execute(_move(first, last), params).rowcount == 1:
                    results.append(True)
                    continue
                for state in ch.states[1:]:
                    conn.execute(_move(state, state), params)
                plain.append(params)
                results.append(False)
            if plain:
                conn.execute(_SAVE, plain)
            for ch in changes:
                if ch.states and is_final(ch.states[-1]):
                    _record_attempt_images(conn, ch.task_id, ch.logs)
        if wipe:
            self._checkpoint()
        return results

    def record_images(self, task_id: str, attempt: int, uses: Sequence[ImageUse]) -> None:
        """Index the images one attempt ran (``apply`` does it when a task ends)."""
        with self.engine.begin() as conn:
            seq = conn.execute(select(tasks.c.seq).where(tasks.c.id == task_id)).scalar_one()
            _insert_images(conn, seq, [(attempt, u) for u in uses])

    def request_cancel(self, task_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(tasks).where(tasks.c.id == task_id).values(cancel_requested=True))

    # --- reads ------------------------------------------------------------

    def get(self, task_id: str, *, with_logs: bool = True) -> TaskRow:
        query = _GET_FULL if with_logs else _GET_ROW
        with self.engine.connect() as conn:
            r = conn.execute(query, {"b_id": task_id}).first()
        if r is None:
            raise no_task(task_id)
        return _row(r, with_logs)

    def get_state(self, task_id: str) -> TaskState:
        with self.engine.connect() as conn:
            state = conn.execute(_GET_STATE, {"b_id": task_id}).scalar()
        if state is None:
            raise no_task(task_id)
        return TaskState(state)

    def owner_of(self, task_id: str) -> str | None:
        """Who created the task (None: no one recorded, before users existed)."""
        with self.engine.connect() as conn:
            r = conn.execute(select(tasks.c.owner).where(tasks.c.id == task_id)).first()
        if r is None:
            raise no_task(task_id)
        return None if r.owner is None else str(r.owner)

    def owners(self, task_ids: Sequence[str]) -> dict[str, str | None]:
        """The owners of those of ``task_ids`` that exist."""
        out: dict[str, str | None] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(task_ids), 500):
                chunk = list(task_ids[start : start + 500])
                query = select(tasks.c.id, tasks.c.owner).where(tasks.c.id.in_(chunk))
                out.update({r.id: r.owner for r in conn.execute(query)})
        return out

    def list(
        self,
        flt: ListFilter,
        *,
        page_size: int,
        page_token: str | None,
        full_rows: bool,
        with_logs: bool = False,
    ) -> Page:
        """One page, newest first, keyset-paginated on ``seq`` (stable under inserts)."""
        cols: tuple[Column[Any], ...] = _SUMMARY_COLS
        if full_rows:
            cols = _FULL_COLS if with_logs else _ROW_COLS
        rows, token = self._page(cols, flt, page_size, page_token)
        if full_rows:
            return Page([_row(r, with_logs) for r in rows], token)
        return Page([TaskSummary(r.id, TaskState(r.state)) for r in rows], token)

    def list_brief(
        self, flt: ListFilter, *, page_size: int, page_token: str | None
    ) -> tuple[builtins.list[TaskBrief], str | None]:
        """One page of the web UI's list, as :meth:`list` pages (and its next page's token)."""
        rows, token = self._page(_BRIEF_COLS, flt, page_size, page_token)
        items = [
            TaskBrief(r.id, TaskState(r.state), r.name, r.creation_time, r.owner, r.batch_id)
            for r in rows
        ]
        return items, token

    def _page(
        self, cols: tuple[Column[Any], ...], flt: ListFilter, page_size: int, page_token: str | None
    ) -> tuple[builtins.list[Row[Any]], str | None]:
        after = decode_token(page_token) if page_token else None
        query, params = page_query(cols, flt, after_seq=after, limit=page_size + 1)
        with self.engine.connect() as conn:
            rows = builtins.list(conn.execute(query, params).all())
        more = len(rows) > page_size
        rows = rows[:page_size]
        return rows, (encode_token(rows[-1].seq) if more and rows else None)

    def counts(self, flt: ListFilter) -> dict[TaskState, int]:
        """How many tasks ``flt`` selects, by state (states with none left out)."""
        query, params = counts_query(flt)
        with self.engine.connect() as conn:
            return {TaskState(state): int(n) for state, n in conn.execute(query, params)}

    def active(self, replica: str | None = None) -> Iterator[TaskRow]:
        """Tasks the engine must look after: queued, starting, running or cancelling.

        ``replica``: only those that replica runs (None: every replica's).
        """
        query = (
            select(*_FULL_COLS)
            .where(tasks.c.state.in_([s.value for s in ACTIVE_STATES]))
            .order_by(tasks.c.seq)
        )
        if replica is not None:
            query = query.where(tasks.c.replica == replica)
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                yield _row(r, True)

    def states(self, task_ids: Sequence[str]) -> dict[str, TaskState]:
        """The states of those of ``task_ids`` that exist."""
        out: dict[str, TaskState] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(task_ids), 500):
                chunk = list(task_ids[start : start + 500])
                query = select(tasks.c.id, tasks.c.state).where(tasks.c.id.in_(chunk))
                out.update({r.id: TaskState(r.state) for r in conn.execute(query)})
        return out

    # --- batches --------------------------------------------------------------

    def get_batch(self, batch_id: str) -> BatchRow:
        with self.engine.connect() as conn:
            r = conn.execute(select(batches).where(batches.c.id == batch_id)).first()
        if r is None:
            raise no_batch(batch_id)
        return _batch(r)

    def list_batches(self, limit: int = 50, owner: str | None = None) -> builtins.list[BatchRow]:
        """The newest batches (``owner``: only that owner's)."""
        query = select(batches).order_by(batches.c.seq.desc()).limit(limit)
        if owner is not None:
            query = query.where(batches.c.owner == owner)
        with self.engine.connect() as conn:
            return [_batch(r) for r in conn.execute(query)]

    def active_batches(self, replica: str | None = None) -> builtins.list[BatchRow]:
        """Batches with a throttle or a deadline that still have unfinished members
        (``replica``: members that replica runs; None: any replica's)."""
        active = [s.value for s in ACTIVE_STATES]
        member = and_(tasks.c.batch_id == batches.c.id, tasks.c.state.in_(active))
        if replica is not None:
            member = and_(member, tasks.c.replica == replica)
        query = select(batches).where(
            and_(
                (batches.c.max_parallel.is_not(None)) | (batches.c.deadline.is_not(None)),
                exists().where(member),
            )
        )
        with self.engine.connect() as conn:
            return [_batch(r) for r in conn.execute(query)]

    def batch_counts(self, batch_id: str) -> dict[TaskState, int]:
        query = (
            select(tasks.c.state, func.count())
            .where(tasks.c.batch_id == batch_id)
            .group_by(tasks.c.state)
        )
        with self.engine.connect() as conn:
            return {TaskState(state): int(n) for state, n in conn.execute(query)}

    def batch_active(self, batch_id: str) -> builtins.list[tuple[str, TaskState]]:
        """The unfinished members' ids and states, in creation order."""
        query = (
            select(tasks.c.id, tasks.c.state)
            .where(tasks.c.batch_id == batch_id)
            .where(tasks.c.state.in_([s.value for s in ACTIVE_STATES]))
            .order_by(tasks.c.seq)
        )
        with self.engine.connect() as conn:
            return [(r.id, TaskState(r.state)) for r in conn.execute(query)]

    def cancel_queued(
        self, queued: Sequence[str], others: Sequence[str], reason: str | None
    ) -> set[str]:
        """Cancel a few hundred tasks in one transaction: those of ``queued`` still QUEUED
        end CANCELED (with ``reason`` in a system log), the ``others`` are asked to stop.
        The ids that ended CANCELED; their credentials are wiped for real, as by
        :meth:`transition`."""
        with self.engine.begin() as conn:
            wipe = bool(queued) and self._holding(conn, queued)
            canceled = self._cancel_queued(conn, queued, others, reason)
        if wipe and canceled:
            self._checkpoint()
        return canceled

    def _cancel_queued(
        self, conn: Connection, queued: Sequence[str], others: Sequence[str], reason: str | None
    ) -> set[str]:
        if others:
            conn.execute(update(tasks).where(tasks.c.id.in_(others)).values(cancel_requested=True))
        if not queued:
            return set()
        if not reason:
            moved = conn.execute(
                update(tasks)
                .where(tasks.c.id.in_(queued), tasks.c.state == TaskState.QUEUED.value)
                .values(state=TaskState.CANCELED.value, secrets="{}")
                .returning(tasks.c.id)
            )
            return set(moved.scalars())
        entry = TaskLog(system_logs=[reason])
        rows = conn.execute(
            select(tasks.c.id, tasks.c.logs).where(
                tasks.c.id.in_(queued), tasks.c.state == TaskState.QUEUED.value
            )
        ).all()
        if rows:
            params = [{"b_id": r.id, "b_logs": _dumps([*json.loads(r.logs), entry])} for r in rows]
            conn.execute(_CANCEL_QUEUED, params)
        return {r.id for r in rows}

    def batch_members(self, batch_id: str, *, active_only: bool = False) -> builtins.list[TaskRow]:
        """Every member in creation order, with logs (for reports and cancel-all)."""
        query = select(*_FULL_COLS).where(tasks.c.batch_id == batch_id)
        if active_only:
            query = query.where(tasks.c.state.in_([s.value for s in ACTIVE_STATES]))
        with self.engine.connect() as conn:
            return [_row(r, True) for r in conn.execute(query.order_by(tasks.c.seq))]


def _batch(r: Any) -> BatchRow:
    return BatchRow(
        id=r.id,
        name=r.name,
        kind=r.kind,
        creation_time=r.creation_time,
        size=r.size,
        max_parallel=r.max_parallel,
        priority=r.priority,
        deadline=r.deadline,
        spec=json.loads(r.spec),
        owner=r.owner,
        owner_group=r.owner_group,
    )
