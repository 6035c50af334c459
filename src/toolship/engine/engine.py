"""The engine: persists tasks and starts, resumes and cancels their attempts.

Event-driven: a submission or a finished attempt wakes the dispatch loop; nothing
sleeps in a polling loop.  On start-up the engine rebuilds its queue from the
database and resumes every attempt that was in flight, so a restart loses nothing.
Several engines (replicas) may share one database: each runs the tasks it admitted
and adopts a dead one's (:mod:`.replicas`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass

from toolship.catalog.trust import ImageTrust
from toolship.compute.base import Attempt, Backend, Request
from toolship.config import Settings
from toolship.db import BatchRow, Store, TaskRow
from toolship.db.catalog import CatalogStore
from toolship.db.unavailable import DatabaseFailure
from toolship.engine.alarm import AlarmClock
from toolship.engine.batches import BatchBuilder
from toolship.engine.core import EngineCore
from toolship.engine.events import (
    Alarm,
    AttemptExited,
    AttemptResumed,
    BatchAdded,
    Cancel,
    CancelRequested,
    Dispatch,
    ExpireBatch,
    Fail,
    Instruction,
    Start,
    StartFailed,
    Stop,
    TaskCreated,
    Tick,
)
from toolship.engine.fairshare import Shares
from toolship.engine.policy import Policy, resolve_policy
from toolship.engine.quotas import Quotas, check_account
from toolship.engine.replicas import Replicas
from toolship.engine.reporter import AttemptReporter
from toolship.engine.scheduler import Accounts
from toolship.engine.tally import Tally
from toolship.engine.validate import admit
from toolship.engine.writer import ReportWriter
from toolship.errors import InvalidRequest
from toolship.identity import ANONYMOUS, Principal
from toolship.models import BatchRequest, Task, TaskLog
from toolship.options import OptionDefaults, TaskOptions, read_options
from toolship.provenance.cache import ResultCache
from toolship.records import Job
from toolship.states import TaskState, is_final
from toolship.storage import StorageRegistry
from toolship.supply.images import image_uses
from toolship.timeutil import now_rfc3339

__all__ = ["Engine", "task_of"]

log = logging.getLogger(__name__)
S = TaskState

# Members handled between two turns of the event loop when a batch is queued or cancelled.
_CHUNK = 200
# Rows of tasks created here and queued, kept until they start (not read back then).
_KEPT_ROWS = 4096
START_RETRY_SECONDS = 1.0  # a start that met an unavailable database is tried again after


def task_of(row: TaskRow) -> Task:
    """The task an attempt runs: as stored, with the images pinned when it was created."""
    task = Task.model_validate(row.spec)
    images = row.resolved.images if row.resolved is not None else ()
    for ex, image in zip(task.executors, images, strict=False):
        ex.image = image
    return task


@dataclass(frozen=True, slots=True)
class _Running:
    worker: Attempt
    task: asyncio.Task[TaskState]
    reporter: AttemptReporter


class Engine:
    """The shell around :class:`~toolship.engine.core.EngineCore`: all of the engine's I/O.

    Every decision (what waits for what, what starts now, what a failed parent
    or a cancel does to the rest, when a batch runs out of time, whether an
    attempt is retried) is the pure core's; this class turns what happens into
    the core's events and carries out the instructions it gets back: store
    writes, ``backend.start``, waking those who wait for a task, one timer for
    the next batch deadline.  So the rules are unit-tested without a database,
    a container or a clock, and this class holds only I/O handles: the attempts
    in flight and the waiters.  Everything runs on one event loop thread, so
    the core needs no lock.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        storage: StorageRegistry,
        backend: Backend,
        policy: Policy | None = None,
        trust: ImageTrust | None = None,
        catalog: CatalogStore | None = None,
    ) -> None:
        self.settings = settings
        self.trust = trust
        self.catalog = catalog  # sweeps and maps of a service read their version here
        self.store = store
        self.storage = storage
        self.policy = policy or resolve_policy(settings.policy, embedded=False)
        self.writer = ReportWriter(store)
        self.backend = backend
        # Takes from and gives back to the backend's free; counts use per user and group.
        access = settings.access
        accounts = Accounts(Quotas.of(access), Shares.of(access))
        self.core = EngineCore(backend.free, accounts=accounts)
        self.batches = BatchBuilder(self)
        # Called with each task that ends having run images (a host command runs none), on
        # the loop: SBOMs of new digests are queued so.
        self.final_hooks: list[Callable[[str], None]] = []
        self.tally = Tally()  # what this engine started and ended, for /metrics
        resolve = None if trust is None else (lambda image: trust.images.resolve(image)[1])
        self.cache = ResultCache(store, storage, resolve)
        self._remembering: set[asyncio.Task[bool]] = set()
        self._stopping = False
        self._attempts: dict[str, _Running] = {}
        self._queued_rows: dict[str, TaskRow] = {}  # created here, queued, not started
        self._waiters: dict[str, asyncio.Event] = {}
        self._alarm = AlarmClock(lambda now: self._apply(self.core.handle(Tick(now))))
        self._expiring: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self.replicas = Replicas(self)
        self.replica = self.replicas.name
        # Called once this replica fenced itself (it was adopted): the server exits.
        self.fenced: Callable[[], None] = lambda: None

    # --- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        await self.backend.open()
        self.replicas.register()
        self.recover()
        self._loop_task = asyncio.create_task(self._dispatch_loop(), name="toolship-dispatch")
        self.replicas.start()

    async def stop(self) -> None:
        """Stop dispatching; running executors keep running and are found again on restart.

        A second call (the server's own stop after fencing) waits for the first.
        """
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopped)

    async def _stop(self) -> None:
        self._stopping = True
        await self.replicas.stop()
        self._alarm.cancel()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        tasks = [r.task for r in self._attempts.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*self._remembering, return_exceptions=True)
        self.writer.flush()
        await self.backend.close()

    async def fence(self) -> None:
        """Stop at once: another replica adopted this one's tasks (its containers run on)."""
        await self.stop()
        self.fenced()

    def recover(self) -> None:
        """Rebuild the core from this replica's tasks in the store."""
        self._resume(self.store.active(self.replica), self.store.active_batches(self.replica))

    async def adopt(
        self, ids: Sequence[str], dead: str, host: str | None, *, same_host: bool
    ) -> None:
        """Take on the tasks moved from replica ``dead`` (on ``host``) as :meth:`recover` does.

        An attempt of a host-bound backend (the local one) resumes only on the dead
        replica's host, where its containers are; elsewhere it ends SYSTEM_ERROR (never
        RUNNING for ever, never run twice).  Any other (a Slurm job) resumes here.
        """
        await self.backend.adopting()
        rows = [self.store.get(task_id) for task_id in ids]
        if self.backend.host_bound and not same_host:
            rows = [row for row in rows if not self._lost(row, dead, host)]
        self._resume(rows, self.store.active_batches(self.replica))
        self._dispatch_now()

    def _lost(self, row: TaskRow, dead: str, host: str | None) -> bool:
        """End an attempt a dead replica ran on another host; whether it was one."""
        if row.state is S.QUEUED and not self.backend.in_flight(row.runtime):
            return False
        where = f"host {host}" if host else "a host no longer known"
        why = (
            f"replica {dead} ({where}) stopped answering while this attempt ran there; "
            f"replica {self.replica} adopted the task, and an attempt does not move between "
            f"hosts: it ends here (what still runs of it is on {host or 'that host'})"
        )
        logs = row.logs or [TaskLog()]
        last = logs[-1]
        last.system_logs = [*(last.system_logs or []), why]
        last.end_time = now_rfc3339()
        if self.store.transition(row.id, S.SYSTEM_ERROR, logs=logs):
            self._ended(row.id, S.SYSTEM_ERROR)
        return True

    def _resume(self, rows: Iterable[TaskRow], batches: Iterable[BatchRow]) -> None:
        """Hand tasks from the store to the core: attempts in flight first (they hold their
        slots), then the queued ones."""
        for batch in batches:
            self._add_batch(batch)
        queued: list[tuple[TaskRow, Request, tuple[str, ...]]] = []
        for row in rows:
            task = task_of(row)
            options = self._options(row, task)
            request = self._request(row, options)
            if row.state is S.QUEUED and not self.backend.in_flight(row.runtime):
                queued.append((row, request, options.after))
                continue
            log.info("resuming task %s (%s)", row.id, row.state)
            self._launch(row, task, options, resume=True)
            self._apply(self.core.handle(AttemptResumed(request, row.cancel_requested)))
        parents = {p for _, _, after in queued for p in after}
        states = self.store.states(sorted(parents)) if parents else {}
        later = {row.id for row, _, _ in queued}
        for row, request, after in queued:
            later.discard(row.id)
            self._place(request, after, states, later)
            if row.cancel_requested:  # asked while its retry was being written
                self._cancel([(row.id, S.QUEUED)], None)
        self._wake.set()

    # --- API-facing operations -------------------------------------------

    def admit(
        self,
        task: Task,
        *,
        seen: dict[str, TaskOptions] | None = None,
        pinned: dict[str, str] | None = None,
        owner: str | None = None,
    ) -> tuple[TaskRow, TaskOptions]:
        return admit(
            task,
            storage=self.storage.for_owner(owner),  # file:// roots naming {user}: its own
            backend=self.backend,
            settings=self.settings,
            policy=self.policy,
            seen=seen,
            trust=self.trust,
            pinned=pinned,
        )

    async def create(
        self,
        task: Task,
        owner: Principal = ANONYMOUS,
        audit: Callable[[str], dict[str, str]] | None = None,
    ) -> str:
        """Store and queue a task; ``audit(task id)``: its event, stored with it."""
        if self.trust is not None and self.trust.active:  # podman, skopeo: off the loop
            row, options = await asyncio.to_thread(self.admit, task, owner=owner.name)
        else:
            row, options = self.admit(task, owner=owner.name)
        row.owner, row.owner_group = owner.name, owner.group
        row.replica = self.replica
        states = self.parent_states(options.after, owner)
        reader = owner.owner_filter(self.settings.access.mode)
        events = [audit(row.id)] if audit is not None else []
        if options.cache and await self._from_cache(row, options, states, reader, events):
            return row.id
        request = self._request(row, options)
        self.core.accounts.quotas.could_start(request)
        check_account(self.settings.access.slurm_accounts, owner.name, options.parameters)
        self.core.accounts.quotas.admit(owner.name, owner.group, self.core.accounts.tally)
        self.store.insert_tasks([row], events=events)
        self._place(request, options.after, states)
        # Dispatched in this same call, it is still QUEUED as just stored: no read back.
        self._dispatch_now(fresh=row)
        if row.id not in self._attempts and len(self._queued_rows) < _KEPT_ROWS:
            # Nor when it starts later: a queued task changes only through this engine,
            # which takes it out of the queue first (cancel) or forgets the row (its end).
            self._queued_rows[row.id] = row
        return row.id

    async def create_batch(
        self, request: BatchRequest, owner: Principal = ANONYMOUS
    ) -> tuple[str, list[str]]:
        """Store a sweep, map or list of tasks in one transaction and queue its members.

        Checking and storing tens of thousands of members takes seconds: that runs in a
        thread, and the members are queued here a chunk at a time, so the server keeps
        answering meanwhile.
        """
        batch, rows, afters, states = await asyncio.to_thread(self.batches.store, request, owner)
        self._add_batch(batch)
        group = batch.id if batch.max_parallel else None
        later = {r.id for r in rows}
        for start in range(0, len(rows), _CHUNK):
            for row, after in zip(
                rows[start : start + _CHUNK], afters[start : start + _CHUNK], strict=True
            ):
                later.discard(row.id)
                cost = (row.cpus, row.memory_gb, row.gpus, row.priority)
                request_ = Request(row.id, *cost, group=group, owner=row.owner,
                                   owner_group=row.owner_group)  # fmt: skip
                self._place(request_, after, states, later)
            await asyncio.sleep(0)
        self._dispatch_now()
        return batch.id, [r.id for r in rows]

    async def _from_cache(
        self,
        row: TaskRow,
        options: TaskOptions,
        parents: dict[str, TaskState],
        reader: str | None,
        events: list[dict[str, str]],
    ) -> bool:
        """Store ``row`` COMPLETE when the result cache answers it (hashing in a thread).

        A task waiting for parents that have not completed is not looked up: its inputs
        may be what they will write.  ``reader``: only that owner's tasks may answer it
        (None: anyone's; see ``Principal.owner_filter``).
        """
        if any(state is not S.COMPLETE for state in parents.values()):
            return False
        hit = await asyncio.to_thread(
            self.cache.lookup,
            row,
            task_of(row),
            options.credentials,
            runtime=options.runtime,
            reader=reader,
        )
        if hit is None:
            return False
        row.state, row.logs = S.COMPLETE, [hit]
        self.store.insert_tasks([row], events=events)
        self.store.record_images(row.id, 1, image_uses(hit.metadata))
        return True

    def parent_states(
        self, after: tuple[str, ...], owner: Principal = ANONYMOUS
    ) -> dict[str, TaskState]:
        """The parents' states; a 400 when one does not exist or ``owner`` may not see it."""
        if not after:
            return {}
        states = self.store.states(list(after))
        reader = owner.owner_filter(self.settings.access.mode)
        if reader is not None:
            owners = self.store.owners(list(states))
            states = {t: s for t, s in states.items() if owners.get(t) == reader}
        missing = [p for p in after if p not in states]
        if missing:
            raise InvalidRequest(
                f"resources.backend_parameters.after: no task with id {missing[0]!r}; "
                "name tasks that exist (or, in a batch, members as @N)"
            )
        return states

    def cancel(self, task_id: str, reason: str | None = None) -> None:
        """Cancel a task; a no-op for a finished one (TES says so).

        A queued task ends CANCELED at once; a running one stays RUNNING until its
        container is gone, then becomes CANCELED.
        """
        state, replica = self.replicas.db.state_and_replica(task_id)
        if is_final(state):
            return
        if replica not in (None, self.replica):  # it runs elsewhere: its replica cancels it
            self.replicas.hand_off([(task_id, state)])
            return
        self._cancel([(task_id, state)], reason)

    async def cancel_batch(self, batch_id: str, reason: str | None = None) -> int:
        """Cancel every unfinished member; how many there were.

        A chunk of members at a time, with a turn of the event loop between chunks: a
        batch of tens of thousands never holds up the server, and the transactions stay
        short, so the server's own writes never wait long.
        """
        members = await asyncio.to_thread(self.store.batch_active, batch_id)
        for start in range(0, len(members), _CHUNK):
            self._cancel(self.replicas.hand_off(members[start : start + _CHUNK]), reason)
            await asyncio.sleep(0)
        return len(members)

    async def wait(self, task_id: str, timeout: float | None) -> TaskState:
        """The task's state once final, or its current state when ``timeout`` runs out."""
        state = self.store.get_state(task_id)
        if is_final(state):
            return state
        event = self._waiters.setdefault(task_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return self.store.get_state(task_id)

    def staging_progress(self, task_id: str) -> dict[str, int] | None:
        """Files and bytes this attempt has staged so far (None when not staging here)."""
        run = self._attempts.get(task_id)
        progress = None if run is None else run.worker.staged()
        return None if progress is None else {"files": progress.files, "bytes": progress.bytes}

    def attempt(self, task_id: str) -> Attempt | None:
        """The attempt in flight for this task, if any (remote workers report to it)."""
        run = self._attempts.get(task_id)
        return None if run is None else run.worker

    # --- feeding the core -------------------------------------------------

    def _place(
        self,
        request: Request,
        after: tuple[str, ...],
        states: dict[str, TaskState],
        later: Container[str] = (),
    ) -> None:
        """Hand a stored QUEUED task to the core; ``states``: its parents' stored states.

        ``later``: parents placed after this task (in the same batch or recovery).  A
        parent placed already that the core no longer knows has ended since ``states``
        was read (between two chunks of a batch): its state is read again, or the task
        would wait for it for ever.  ``states`` learns the ends this placement causes.
        """
        stale = [
            p
            for p in after
            if p not in later and not self.core.is_live(p) and not is_final(states.get(p, S.QUEUED))
        ]
        if stale:
            states.update(self.store.states(stale))
        out = self.core.handle(TaskCreated(request, after, states))
        for ins in out:
            if isinstance(ins, Fail):
                states[ins.task_id] = S.SYSTEM_ERROR
        self._apply(out)

    def _add_batch(self, batch: BatchRow) -> None:
        timeout = str(batch.spec.get("timeout", "its timeout"))
        self._apply(
            self.core.handle(BatchAdded(batch.id, batch.max_parallel, batch.deadline, timeout))
        )

    def _cancel(self, members: Sequence[tuple[str, TaskState]], reason: str | None) -> None:
        """Cancel a few hundred tasks (one, or a chunk of a batch) in one transaction.

        Queued ones leave the core's queue before they are marked CANCELED, so none
        starts meanwhile; running ones are asked to stop.
        """
        out: list[Instruction] = []
        for task_id, state in members:
            out += self.core.handle(CancelRequested(task_id, state, reason))
        queued = [i.task_id for i in out if isinstance(i, Cancel)]
        stops = [i for i in out if isinstance(i, Stop)]
        canceled = self.store.cancel_queued(queued, [i.task_id for i in stops], reason)
        for task_id in queued:
            if task_id in canceled:
                self._ended(task_id, S.CANCELED)
        self._apply(i for i in out if not isinstance(i, Cancel))
        self._wake.set()

    def _apply(self, instructions: Iterable[Instruction]) -> None:
        for ins in instructions:
            if isinstance(ins, Start):
                self._start(ins.request)
            elif isinstance(ins, Fail):
                entry = TaskLog(system_logs=[ins.why], end_time=now_rfc3339())
                if self.store.transition(ins.task_id, S.SYSTEM_ERROR, logs=[entry]):
                    self._ended(ins.task_id, S.SYSTEM_ERROR)
            elif isinstance(ins, Cancel):  # cancelled while its retry was being written
                if ins.task_id in self.store.cancel_queued([ins.task_id], [], ins.reason):
                    self._ended(ins.task_id, S.CANCELED)
            elif isinstance(ins, Stop):
                run = self._attempts.get(ins.task_id)
                if run is not None:
                    run.worker.cancel(ins.reason)
            elif isinstance(ins, ExpireBatch):
                task = asyncio.create_task(self._expire(ins), name=f"expire-{ins.batch_id}")
                self._expiring.add(task)
                task.add_done_callback(self._expiring.discard)
            elif isinstance(ins, Alarm):
                self._alarm.arm(ins.at)
            else:
                raise AssertionError(f"{ins} outside an attempt's report")

    def _ended(self, task_id: str, state: TaskState) -> None:
        """A task that never started, or waits to start again, was given a final state."""
        self._queued_rows.pop(task_id, None)
        self.tally.task_ended(state)
        self._settled(task_id)

    def _settled(self, task_id: str) -> None:
        """The task reached a final state: wake those waiting for it, here and elsewhere."""
        self._wake_waiter(task_id)
        self.replicas.ended(task_id)

    def _wake_waiter(self, task_id: str) -> None:
        event = self._waiters.pop(task_id, None)
        if event is not None:
            event.set()

    def watched(self, task_ids: Iterable[str] | None = None) -> list[str]:
        """Those of ``task_ids`` (None: all) whose end someone here waits for: a caller
        of :meth:`wait`, or a task held for its parent (another replica's)."""
        awaited = self.core.awaited()
        if task_ids is None:
            return list(dict.fromkeys([*self._waiters, *awaited]))
        return [t for t in task_ids if t in self._waiters or t in awaited]

    def woken(self, task_ids: Sequence[str]) -> None:
        """Tasks another replica ran may have ended: wake their waiters and children here."""
        watched = self.watched(task_ids)
        if watched:
            self.ended_elsewhere(self.store.states(watched))

    def ended_elsewhere(self, states: dict[str, TaskState]) -> None:
        """Of these tasks' states, as read, the final ones wake their waiters and children."""
        awaited = set(self.core.awaited())
        released = False
        for task_id, state in states.items():
            if not is_final(state):
                continue
            self._wake_waiter(task_id)
            if task_id in awaited and not self.core.is_live(task_id):
                self._apply(self.core.handle(AttemptExited(task_id, state, time.time())))
                released = True
        if released:
            self._dispatch_now()

    async def _expire(self, expired: ExpireBatch) -> None:
        """Cancel the unfinished members of a batch that ran out of time."""
        try:
            n = await self.cancel_batch(expired.batch_id, expired.reason)
        except Exception:
            log.exception("cancelling the members of batch %s failed", expired.batch_id)
            return
        if n:
            log.info("batch %s timed out; cancelled %d unfinished members", expired.batch_id, n)

    # --- dispatch ---------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self.dispatch()
            except Exception:
                log.exception("dispatch failed; retrying on the next event")

    def _dispatch_now(self, fresh: TaskRow | None = None) -> None:
        """Fill a freed slot at once: a wake-up of the loop task would cost a turn."""
        try:
            self.dispatch(fresh)
        except Exception:
            log.exception("dispatch failed; retrying on the next event")
            self._wake.set()

    def dispatch(self, fresh: TaskRow | None = None) -> None:
        """Start what the free capacity allows; ``fresh``: a row just stored, not re-read."""
        if self._stopping:  # stopped (or fenced): tasks created meanwhile wait, stored
            return
        for ins in self.core.handle(Dispatch(time.time())):
            assert isinstance(ins, Start)
            self._start(ins.request, fresh)

    def _start(self, request: Request, fresh: TaskRow | None = None) -> None:
        task_id = request.task_id
        kept = self._queued_rows.pop(task_id, None)
        try:
            if fresh is not None and fresh.id == task_id:
                row = fresh
            elif kept is not None:
                row = kept
            else:
                row = self.store.get(task_id)
                if row.state is not S.QUEUED:  # it ended meanwhile: nothing to start
                    self._apply(self.core.handle(AttemptExited(task_id, row.state, time.time())))
                    return
            task = task_of(row)
            self._launch(row, task, self._options(row, task), resume=False)
        except DatabaseFailure as exc:  # locked or restarting: nothing started, try again
            log.warning("starting task %s waits for the database (%s)", task_id, exc.orig)
            self._apply(self.core.handle(StartFailed(task_id)))
            asyncio.get_running_loop().call_later(START_RETRY_SECONDS, self._start_later, request)
        except Exception:
            log.exception("starting task %s failed; it stays queued until a restart", task_id)
            self._apply(self.core.handle(StartFailed(task_id)))

    def _start_later(self, request: Request) -> None:
        """Queue again a task whose start met an unavailable database (not till a restart)."""
        if self._stopping:
            return  # still QUEUED in the store: the next start recovers it
        try:
            self._place(request, (), {})
        except DatabaseFailure:
            asyncio.get_running_loop().call_later(START_RETRY_SECONDS, self._start_later, request)
            return
        self._dispatch_now()

    def _launch(self, row: TaskRow, task: Task, options: TaskOptions, *, resume: bool) -> None:
        """Start an attempt: the next one, or (``resume``) the one the row says was in flight."""
        logs = row.logs
        job = Job(
            task_id=row.id,
            task=task,
            options=options,
            attempt=logs[-1] if resume and logs else None,
            runtime=row.runtime,
            attempt_number=max(1, len(logs)) if resume else len(logs) + 1,
            credentials={**options.credentials, **self.store.secrets_of(row)},
            owner=row.owner,
        )
        earlier = logs[:-1] if resume else logs
        reporter = AttemptReporter(
            self.core, self.writer, job, earlier, self._settled, tally=self.tally
        )
        worker = self.backend.start(job, reporter)
        task_ = asyncio.create_task(worker.run(), name=f"task-{row.id}")
        self._attempts[row.id] = _Running(worker, task_, reporter)
        if not resume:
            self.tally.started += 1
        task_.add_done_callback(functools.partial(self._finished, row.id))

    def _finished(self, task_id: str, done: asyncio.Task[TaskState]) -> None:
        run = self._attempts.pop(task_id, None)
        if run is None or done.cancelled():
            return  # server shutting down: the attempt resumes on restart
        # The final state its reporter committed (a final state never changes), else as stored.
        ended = run.reporter.ended
        state = ended if ended is not None else self.store.get_state(task_id)
        self._apply(self.core.handle(AttemptExited(task_id, state, time.time())))
        if is_final(state):
            self._settled(task_id)
            if run.reporter.ran_images or ended is None:
                for hook in self.final_hooks:
                    hook(task_id)
            self._remember(task_id, state)
        if not self._stopping:
            self._dispatch_now()

    def _remember(self, task_id: str, state: TaskState) -> None:
        """A task that asked for the cache and completed: its key is stored (in a thread)."""
        if not self.cache.asked(task_id):
            return
        if state is not S.COMPLETE:
            self.cache.forget(task_id)
            return
        task = asyncio.create_task(
            asyncio.to_thread(self.cache.remember, task_id), name=f"cache-{task_id}"
        )
        self._remembering.add(task)
        task.add_done_callback(self._remembered)

    def _remembered(self, done: asyncio.Task[bool]) -> None:
        self._remembering.discard(done)
        if not done.cancelled() and done.exception() is not None:
            log.error("storing a cache key failed", exc_info=done.exception())

    def _request(self, row: TaskRow, options: TaskOptions) -> Request:
        request = self.backend.request(row.id, options)
        throttled = row.batch_id is not None and self.core.throttled(row.batch_id)
        group = row.batch_id if throttled else None
        return dataclasses.replace(
            request, group=group, owner=row.owner, owner_group=row.owner_group
        )

    def _options(self, row: TaskRow, task: Task) -> TaskOptions:
        """The options the task was accepted with, whatever the server's defaults are now."""
        return read_options(task.resources, row.resolved or OptionDefaults.of(self.settings))
