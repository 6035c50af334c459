"""This engine as one replica among several on one database (docs/deploy.md).

Each replica runs the tasks it admitted (``tasks.replica``), so two never start the
same one; any replica answers any request.  What one replica cannot do alone goes
through the database: it registers under its name at start (refused while a live
replica holds that name), heartbeats every ``server.heartbeat_s``, and the replica
that holds the adopter's lock moves the unfinished tasks of a replica silent for
``server.adopt_after_s`` to itself and resumes them.  A replica that finds its own
row gone or taken, or that could not heartbeat for nearly ``adopt_after_s``, has
been (or may be) adopted: it stops its engine at once (fencing) rather than run a
task another replica now runs.  On PostgreSQL the end of a task and a cancel meant
for another replica are NOTIFYed; each heartbeat also looks again, for a wake-up
lost with a connection (and on SQLite, which notifies no one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from toolship.db.replicas import Listener, ReplicaRow, ReplicaStore, Singleton
from toolship.db.usage import HeldElsewhere, held_elsewhere
from toolship.engine.quotas import Use
from toolship.errors import ConfigError, NotFound
from toolship.states import TaskState, is_final

if TYPE_CHECKING:
    from toolship.engine.engine import Engine

__all__ = ["Replicas"]

log = logging.getLogger(__name__)


def _pid_alive(pid: int) -> bool:
    """A running process: not gone, and not a zombie (a server killed with -9 stays one
    until its parent reaps it, and must not hold its name meanwhile)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # /proc unreadable here: ask the kernel whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


class Replicas:
    """The replica an :class:`~toolship.engine.engine.Engine` is: its row, heartbeat,
    adoptions and wake-ups."""

    def __init__(self, engine: Engine) -> None:
        server = engine.settings.server
        self.engine = engine
        self.name = engine.settings.replica_name
        self.host = socket.gethostname()
        self.token = uuid.uuid4().hex
        self.heartbeat_s = server.heartbeat_s
        self.adopt_after_s = server.adopt_after_s
        self.db = ReplicaStore(engine.store.engine)
        self.adopter = Singleton(engine.store.engine)
        self.fenced = False
        # Between moving a dead replica's tasks here and resuming them: their workers'
        # requests wait (503) rather than hear that no attempt runs here.
        self.moving = False
        self._beat_at = 0.0  # monotonic time of the last heartbeat that landed
        self._outbox: list[str] = []
        self._loops: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._listener: Listener | None = None

    # --- lifecycle --------------------------------------------------------

    def register(self) -> None:
        """Take this replica's name (refused while a live replica holds it), and the
        unfinished tasks stored before replicas existed."""
        row = self.db.get(self.name)
        if row is not None and self._alive(row):
            raise ConfigError(
                f"replica name {self.name!r} is held by a running server (host {row.host}, "
                f"pid {row.pid}): give this server a name of its own (server.replica, "
                "TOOLSHIP_SERVER__REPLICA), or stop the other one first"
            )
        previous = None if row is None else row.token
        url = self.engine.settings.server.advertise_url
        if not self.db.take(self.name, self.token, self.host, os.getpid(), previous, url):
            raise ConfigError(
                f"replica name {self.name!r} was taken by another server starting at the "
                "same moment: give each replica its own server.replica"
            )
        self._beat_at = time.monotonic()
        if self.engine.core.accounts.quotas.counts_use:  # before this replica starts any
            self._held_elsewhere(held_elsewhere(self.engine.store.engine, self.name))
        claimed = self.db.claim_unowned(self.name)
        if claimed:
            log.info("replica %s takes %d unfinished tasks stored before 0009", self.name, claimed)

    def _alive(self, row: ReplicaRow) -> bool:
        """Whether the server that registered ``row`` may still run (it must not be replaced)."""
        if row.stopped is not None or self.db.now() - row.heartbeat >= self.adopt_after_s:
            return False
        if row.host == self.host:  # an earlier engine of this very process is not another
            return row.pid != os.getpid() and _pid_alive(row.pid)
        return True

    def start(self) -> None:
        self._spawn(self._beating(), "toolship-heartbeat")
        if self.db.postgres:
            loop = asyncio.get_running_loop()
            url = self.db.listen_url()
            self._listener = Listener(url, loop, self._received, self._reconnected)
            self._listener.start()

    async def stop(self) -> None:
        """Stop heartbeating (after the current beat) and listening; a clean stop is
        recorded, so this name may start again at once."""
        self._stopping.set()
        current = asyncio.current_task()
        await asyncio.gather(*(t for t in self._loops if t is not current), return_exceptions=True)
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop, self.db, self.token)
        self._flush()
        if not self.fenced:
            with contextlib.suppress(DBAPIError):
                self.db.stop(self.name, self.token)
        self.adopter.release()

    # --- heartbeat, adoption, fencing -----------------------------------------

    async def _beating(self) -> None:
        """Heartbeat until stopped; the SQL runs in threads (a locked SQLite file would
        otherwise hold up the server's event loop for its busy timeout)."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.heartbeat_s)
                return
            try:
                await self.tick()
            except DBAPIError as exc:
                log.warning("replica %s: the database did not answer (%s)", self.name, exc)
                self._late()
            except Exception:
                log.exception("replica %s: heartbeat failed; trying again", self.name)

    async def tick(self) -> None:
        """One heartbeat: say this replica lives, look for lost wake-ups, adopt the dead."""
        if not await asyncio.to_thread(self.db.heartbeat, self.name, self.token):
            self.fence("its replica row was taken over: another replica adopted its tasks")
            return
        self._beat_at = time.monotonic()
        await self._catch_up()
        if await asyncio.to_thread(self.adopter.held):
            await self._adopt()
        if self.engine.core.accounts.quotas.counts_use:
            held = await asyncio.to_thread(held_elsewhere, self.engine.store.engine, self.name)
            if self._held_elsewhere(held):
                self.engine.dispatch()  # what another replica ran ended: room here

    def _held_elsewhere(self, held: Sequence[HeldElsewhere]) -> bool:
        """What the other replicas' tasks hold, into the quotas' tally (a user's quota is
        his across the service); whether some of it went."""
        users: dict[str, Use] = {}
        groups: dict[str, Use] = {}
        for h in held:
            use = Use(h.cpus, h.memory_gb, h.gpus, h.queued)
            users[h.owner] = users.get(h.owner, Use()) + use
            if h.group is not None:
                groups[h.group] = groups.get(h.group, Use()) + use
        return self.engine.core.accounts.tally.held_elsewhere(users, groups)

    def _late(self) -> None:
        """No heartbeat for nearly ``adopt_after_s``: another replica may adopt any moment.

        Only on PostgreSQL: SQLite serves one server, which nobody adopts from (and whose
        file another process may lock for a while).
        """
        silent = time.monotonic() - self._beat_at
        if self.db.postgres and silent > self.adopt_after_s - self.heartbeat_s:
            self.fence(f"no heartbeat reached the database for {silent:.0f} s")

    async def _adopt(self) -> None:
        orphaned = await asyncio.to_thread(self.db.orphaned, self.name, self.adopt_after_s)
        for dead, token in orphaned:
            host = None
            if token is not None:
                row = await asyncio.to_thread(self.db.get, dead)
                host = None if row is None else row.host
            self.moving = True
            try:
                ids = await asyncio.to_thread(
                    self.db.adopt, dead, token, self.name, self.adopt_after_s
                )
                if ids:
                    log.warning(
                        "replica %s adopts %d unfinished tasks of replica %s (silent for over "
                        "%g s)", self.name, len(ids), dead, self.adopt_after_s,
                    )  # fmt: skip
                    await self.engine.adopt(ids, dead, host, same_host=host == self.host)
            finally:
                self.moving = False

    def fence(self, why: str) -> None:
        """Stop this replica's engine now: another replica runs (or may run) its tasks."""
        if self.fenced:
            return
        self.fenced = True
        log.error(
            "replica %s stops its engine: %s. Its tasks are another replica's now; "
            "restart this server to serve again",
            self.name,
            why,
        )
        asyncio.get_running_loop().create_task(self.engine.fence(), name="toolship-fence")

    def running_elsewhere(self, task_id: str) -> tuple[str, ReplicaRow | None] | None:
        """The replica that runs this unfinished task if another one: its name and row
        (None: it has none, its tasks are being adopted).  None: the task is final, or
        this replica's, or no replica's, or not there."""
        try:
            state, replica = self.db.state_and_replica(task_id)
        except NotFound:
            return None
        if is_final(state) or replica in (None, self.name):
            return None
        return replica, self.db.get(replica)

    # --- wake-ups -------------------------------------------------------------

    def ended(self, task_id: str) -> None:
        """A task this replica ran reached a final state: wake the others (batched)."""
        if not self.db.postgres:
            return
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(f"end {task_id} {self.name}")

    def _flush(self) -> None:
        notes, self._outbox = self._outbox, []
        try:
            self.db.notify(notes)
        except DBAPIError:  # each replica's heartbeat looks again
            log.warning("replica %s could not notify %d task ends", self.name, len(notes))

    def hand_off(self, members: Sequence[tuple[str, TaskState]]) -> list[tuple[str, TaskState]]:
        """Cancels of other replicas' tasks are recorded and sent to them; this replica's
        own (and tasks no replica runs) come back, for it to cancel."""
        owners = self.db.replicas_of([task_id for task_id, _ in members])
        own = [(t, s) for t, s in members if owners.get(t) in (None, self.name)]
        others = [(t, owners[t]) for t, _ in members if owners.get(t) not in (None, self.name)]
        if others:
            self.db.request_cancel([t for t, _ in others])
            if self.db.postgres:
                self.db.notify([f"cancel {t} {owner}" for t, owner in others])
        return own

    def _received(self, payload: str) -> None:
        kind, task_id, replica = payload.split(" ", 2)
        try:
            if kind == "end" and replica != self.name:
                self.engine.woken([task_id])
            elif kind == "cancel" and replica == self.name:
                self.engine.cancel(task_id)
        except Exception:  # the listener goes on; the next heartbeat looks again
            log.exception("replica %s: handling %r failed", self.name, payload)

    def _reconnected(self) -> None:
        if not self._stopping.is_set():
            self._spawn(self._catch_up(), "toolship-catch-up")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._loops.add(task)
        task.add_done_callback(self._loops.discard)

    async def _catch_up(self) -> None:
        """What a wake-up lost with a connection (or never sent: SQLite) would have said."""
        watched = self.engine.watched()
        if watched:
            self.engine.ended_elsewhere(await asyncio.to_thread(self.engine.store.states, watched))
        for task_id, _ in await asyncio.to_thread(self.db.cancels_for, self.name):
            if not self.engine.core.stopping(task_id):
                self.engine.cancel(task_id)
