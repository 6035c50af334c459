"""Replicas that share one database: their rows, the tasks each runs, and their wake-ups.

Each server process is a replica with a row of its own (``replicas``), refreshed by a
heartbeat, and each task names the replica that runs it (``tasks.replica``).  A
replica whose heartbeat stopped is *adopted*: its row goes and its unfinished tasks
move to the adopter, in one transaction with conditions two adopters (or an adopter
and the dead replica coming back) cannot both meet.  Times are the database's clock,
so replicas on hosts whose clocks differ agree on whose heartbeat is old.

On PostgreSQL replicas wake each other with ``NOTIFY`` (:class:`Listener` is the
receiving end) and one of them at a time holds :class:`Singleton`, a session advisory
lock that PostgreSQL releases when that replica's connection dies.  SQLite has one
server: it always holds the singleton and nothing is notified.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    and_,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.sql import ColumnElement

from toolship.db.schema import replicas, tasks
from toolship.db.store import no_task
from toolship.states import ACTIVE_STATES, TaskState

__all__ = ["CHANNEL", "Listener", "ReplicaRow", "ReplicaStore", "Singleton"]

log = logging.getLogger(__name__)

CHANNEL = "toolship"  # the NOTIFY channel every replica listens on
_ADOPTER_KEY = 0x746F6F6C  # pg advisory lock of the adopting replica ("tool")
_MOVING_KEY = 0x73686970  # pg transaction lock: registering and adopting never overlap
_ACTIVE = [s.value for s in ACTIVE_STATES]


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    name: str
    token: str
    host: str
    pid: int
    started: float
    heartbeat: float
    stopped: float | None
    url: str | None = None  # how other replicas reach it (empty: not known)


def _now(engine: Engine) -> ColumnElement[float]:
    """The database's clock in Unix seconds (the one clock all replicas share)."""
    if engine.dialect.name == "postgresql":
        return cast(func.extract("epoch", func.clock_timestamp()), Float)
    return (func.julianday("now") - literal(2440587.5)) * literal(86400.0)


class ReplicaStore:
    """The replicas' rows and the ``tasks.replica`` column: the SQL of running as many."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._now = _now(engine)

    def _serialize(self, conn: Connection) -> None:
        """Registering and adopting, one at a time across replicas (until commit)."""
        if self.postgres:
            conn.execute(select(func.pg_advisory_xact_lock(_MOVING_KEY)))

    def listen_url(self) -> str:
        """The database as psycopg connects to it (for :class:`Listener`)."""
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def now(self) -> float:
        with self.engine.connect() as conn:
            return float(conn.execute(select(self._now)).scalar_one())

    def get(self, name: str) -> ReplicaRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(replicas).where(replicas.c.name == name)).first()
        return None if r is None else ReplicaRow(**r._asdict())

    def all(self) -> builtins.list[ReplicaRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(replicas).order_by(replicas.c.name)).all()
        return [ReplicaRow(**r._asdict()) for r in rows]

    def take(
        self, name: str, token: str, host: str, pid: int, previous: str | None, url: str = ""
    ) -> bool:
        """Register as ``name`` (reached at ``url``): insert the row, or take over the one
        whose token is ``previous`` (a dead or stopped incarnation).  False: another
        replica registered or adopted that name meanwhile."""
        values = {"token": token, "host": host, "pid": pid, "stopped": None, "url": url or None}
        with self.engine.begin() as conn:
            self._serialize(conn)
            if previous is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(replicas).values(
                                name=name, started=self._now, heartbeat=self._now, **values
                            )
                        )
                except IntegrityError:
                    return False
                return True
            moved = conn.execute(
                update(replicas)
                .where(replicas.c.name == name, replicas.c.token == previous)
                .values(started=self._now, heartbeat=self._now, **values)
            )
            return moved.rowcount == 1

    def heartbeat(self, name: str, token: str) -> bool:
        """Say this replica lives; False when its row is gone or another's (it was adopted)."""
        with self.engine.begin() as conn:
            beat = conn.execute(
                update(replicas)
                .where(replicas.c.name == name, replicas.c.token == token)
                .values(heartbeat=self._now)
            )
        return beat.rowcount == 1

    def stop(self, name: str, token: str) -> None:
        """A clean stop: the name may be taken again at once (its tasks stay its own)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(replicas)
                .where(replicas.c.name == name, replicas.c.token == token)
                .values(stopped=self._now)
            )

    def claim_unowned(self, name: str) -> int:
        """Unfinished tasks stored before replicas existed become ``name``'s (one wins)."""
        with self.engine.begin() as conn:
            self._serialize(conn)
            moved = conn.execute(
                update(tasks)
                .where(tasks.c.replica.is_(None), tasks.c.state.in_(_ACTIVE))
                .values(replica=name)
            )
        return moved.rowcount

    def orphaned(self, me: str, after_s: float) -> builtins.list[tuple[str, str | None]]:
        """Replicas to adopt from: (name, token) of those whose heartbeat is older than
        ``after_s``, and (name, None) of names unfinished tasks hold that have no row."""
        with self.engine.connect() as conn:
            stale = conn.execute(
                select(replicas.c.name, replicas.c.token).where(
                    replicas.c.name != me, replicas.c.heartbeat < self._now - after_s
                )
            ).all()
            rowless = conn.execute(
                select(tasks.c.replica)
                .distinct()
                .where(
                    tasks.c.state.in_(_ACTIVE),
                    tasks.c.replica.is_not(None),
                    tasks.c.replica != me,
                    ~exists().where(replicas.c.name == tasks.c.replica),
                )
            ).scalars()
            names = builtins.list(rowless)
        return [(r.name, r.token) for r in stale] + [(n, None) for n in names]

    def adopt(self, dead: str, token: str | None, me: str, after_s: float) -> builtins.list[str]:
        """Move the unfinished tasks of replica ``dead`` to ``me``; their ids.

        ``token``: the dead row's, which goes in the same transaction, only if it is still
        that incarnation's and its heartbeat still old (a replica that came back keeps its
        tasks); None: a name with no row, which must still have none.
        """
        with self.engine.begin() as conn:
            self._serialize(conn)
            if token is not None:
                gone = conn.execute(
                    delete(replicas).where(
                        replicas.c.name == dead,
                        replicas.c.token == token,
                        replicas.c.heartbeat < self._now - after_s,
                    )
                )
                if gone.rowcount != 1:
                    return []
            elif conn.execute(select(replicas.c.name).where(replicas.c.name == dead)).first():
                return []
            moved = conn.execute(
                update(tasks)
                .where(tasks.c.replica == dead, tasks.c.state.in_(_ACTIVE))
                .values(replica=me)
                .returning(tasks.c.id)
            )
            return builtins.list(moved.scalars())

    def state_and_replica(self, task_id: str) -> tuple[TaskState, str | None]:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(tasks.c.state, tasks.c.replica).where(tasks.c.id == task_id)
            ).first()
        if r is None:
            raise no_task(task_id)
        return TaskState(r.state), r.replica

    def replicas_of(self, task_ids: Sequence[str]) -> dict[str, str | None]:
        """The replica of each of ``task_ids`` that exists."""
        out: dict[str, str | None] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(task_ids), 500):
                chunk = builtins.list(task_ids[start : start + 500])
                query = select(tasks.c.id, tasks.c.replica).where(tasks.c.id.in_(chunk))
                out.update({r.id: r.replica for r in conn.execute(query)})
        return out

    def cancels_for(self, me: str) -> builtins.list[tuple[str, TaskState]]:
        """``me``'s unfinished tasks someone asked to cancel (a wake-up may have been lost)."""
        query = select(tasks.c.id, tasks.c.state).where(
            and_(tasks.c.replica == me, tasks.c.state.in_(_ACTIVE), tasks.c.cancel_requested)
        )
        with self.engine.connect() as conn:
            return [(r.id, TaskState(r.state)) for r in conn.execute(query)]

    def request_cancel(self, task_ids: Sequence[str]) -> None:
        """Record cancels for the replicas that run these tasks (told by :meth:`notify`)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(tasks).where(tasks.c.id.in_(task_ids)).values(cancel_requested=True)
            )

    def notify(self, payloads: Sequence[str]) -> None:
        """Wake the other replicas (PostgreSQL; one server on SQLite has no one to wake)."""
        if not self.postgres or not payloads:
            return
        with self.engine.begin() as conn:
            conn.execute(
                text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) p"),
                {"channel": CHANNEL, "payloads": builtins.list(payloads)},
            )


class Singleton:
    """Held by one replica at a time: a PostgreSQL session advisory lock on a connection
    of its own, so a replica that dies (or loses the database) lets go of it at once.
    On SQLite the one server always holds it."""

    def __init__(self, engine: Engine, key: int = _ADOPTER_KEY) -> None:
        self.engine = engine
        self.key = key
        self._conn: Connection | None = None

    def held(self) -> bool:
        """Hold it now if free; whether this replica holds it (checked on its connection)."""
        if self.engine.dialect.name != "postgresql":
            return True
        try:
            if self._conn is not None:
                self._conn.execute(select(literal(1)))
                return True
            conn = self.engine.connect()
            got = bool(conn.execute(select(func.pg_try_advisory_lock(self.key))).scalar())
            conn.commit()
            if got:
                self._conn = conn
            else:
                conn.close()
            return got
        except DBAPIError:
            log.warning("lost the database connection holding the adopter's lock")
            self.release()
            return False

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # the session ends: PostgreSQL lets go of the lock
            finally:
                conn.close()


class Listener:
    """LISTEN on PostgreSQL, in a thread with a connection of its own: hands each
    notification's payload to ``received`` on ``loop``.

    When the connection drops it connects again, and ``connected`` runs (on ``loop``)
    after each LISTEN, so the caller can catch up on what it may have missed.  A thread,
    not a coroutine: a connection abandoned half-way through its start would hold up
    ``DROP DATABASE`` until PostgreSQL's authentication timeout.
    """

    def __init__(
        self,
        url: str,
        loop: asyncio.AbstractEventLoop,
        received: Callable[[str], None],
        connected: Callable[[], None],
    ) -> None:
        self.url = url
        self.loop = loop
        self.received = received
        self.connected = connected
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="toolship-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, store: ReplicaStore, token: str) -> None:
        """End the thread (woken by a notification of its own, else within a second)."""
        self._stopping.set()
        with contextlib.suppress(DBAPIError):
            store.notify([f"stop {token} -"])
        self._thread.join(5)

    def _deliver(self, callback: Callable[..., None], *args: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: the server is gone
            self.loop.call_soon_threadsafe(callback, *args)

    def _run(self) -> None:
        import psycopg  # here: ~0.1 s of import that a server on SQLite never needs

        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self.url, autocommit=True, connect_timeout=5, application_name="toolship-listen"
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._deliver(self.connected)
                    # One note at a time, never leaving the generator early: psycopg would
                    # cancel by a connection of its own, left half-open (DROP DATABASE
                    # then waits for it).
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=1.0, stop_after=1):
                            self._deliver(self.received, note.payload)
            except psycopg.Error as exc:
                log.warning("listening for other replicas failed (%s); again in 1 s", exc)
                self._stopping.wait(1)
