"""The engine: persists tasks, keeps the queue, starts and cancels attempts.

Event-driven: a submission or a finished attempt wakes the dispatch loop,
which asks the pure scheduler what fits and starts it; nothing sleeps in a
polling loop.  On start-up the engine rebuilds its queue from the database
and resumes every attempt that was in flight, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import logging
import time
from dataclasses import dataclass

from toolship.compute.base import Attempt, Backend, Request
from toolship.config import Settings
from toolship.db import BatchRow, Store, TaskRow
from toolship.engine.batches import BatchBuilder
from toolship.engine.policy import Policy, resolve_policy
from toolship.engine.scheduler import Queue, Throttle, pick
from toolship.engine.validate import admit
from toolship.engine.writer import ReportWriter
from toolship.errors import InvalidRequest
from toolship.models import BatchRequest, Task, TaskLog
from toolship.options import OptionDefaults, TaskOptions, read_options, retry_reason
from toolship.records import Job, RuntimeRecord
from toolship.states import TaskState, is_final
from toolship.storage import StorageRegistry
from toolship.timeutil import now_rfc3339

__all__ = ["Engine"]

log = logging.getLogger(__name__)
S = TaskState


@dataclass
class _Running:
    request: Request
    worker: Attempt
    task: asyncio.Task[TaskState] | None = None


class _Reporter:
    """Persists a worker's progress for one task (the local, in-process reporter).

    A failed attempt that its retry policy covers is not final: the task goes
    back to QUEUED with the attempt kept in ``logs[]``, and starts again.
    """

    def __init__(self, engine: Engine, job: Job, earlier: list[TaskLog]) -> None:
        self.engine = engine
        self.job = job
        self.task_id = job.task_id
        self.earlier = earlier

    async def update(
        self,
        state: TaskState | None,
        attempt: TaskLog,
        runtime: RuntimeRecord,
        *,
        wait: bool = True,
    ) -> bool:
        logs = [*self.earlier, attempt]
        writer = self.engine.writer
        if state is None or not is_final(state):
            return await writer.write(self.task_id, state, logs, runtime, wait=wait)
        policy = self.job.options.retry
        why = (
            retry_reason(policy, self.job.attempt_number, state, attempt)
            if policy.retries
            else None
        )
        if why is not None and not self.engine.cancel_wanted(self.task_id):
            attempt.system_logs = [
                *(attempt.system_logs or []),
                f"attempt {self.job.attempt_number} ended {state.value} with {why}; retrying "
                f"(attempt {self.job.attempt_number + 1} of at most {policy.retries + 1})",
            ]
            if await writer.write(self.task_id, S.QUEUED, logs, RuntimeRecord(), wait=True):
                return True
        return await writer.write(self.task_id, state, logs, runtime, wait=wait)


# Members handled between two turns of the event loop when a batch is queued or cancelled.
_CHUNK = 200


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        storage: StorageRegistry,
        backend: Backend,
        policy: Policy | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.storage = storage
        self.policy = policy or resolve_policy(settings.policy, embedded=False)
        self.writer = ReportWriter(store)
        self._stopping = False
        self.backend = backend
        self.queue = Queue()
        self.throttle = Throttle()
        self.running: dict[str, _Running] = {}
        # Dependencies: child -> parents not yet COMPLETE, and parent -> waiting children.
        self.waiting: dict[str, set[str]] = {}
        self.dependents: dict[str, set[str]] = {}
        self._group_of: dict[str, str] = {}  # members of throttled batches
        self._held: dict[str, Request] = {}  # waiting for parents
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._expiring: set[asyncio.Task[None]] = set()
        self.batches = BatchBuilder(self)
        self._wake = asyncio.Event()
        self._waiters: dict[str, asyncio.Event] = {}
        self._loop_task: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        await self.backend.open()
        self.recover()
        self._loop_task = asyncio.create_task(self._dispatch_loop(), name="toolship-dispatch")

    async def stop(self) -> None:
        """Stop dispatching; running executors keep running and are found again on restart."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for run in list(self.running.values()):
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(
            *(r.task for r in self.running.values() if r.task is not None), return_exceptions=True
        )
        self.writer.flush()
        await self.backend.close()

    def recover(self) -> None:
        for batch in self.store.active_batches():
            self.throttle.limit(batch.id, batch.max_parallel)
            self.arm_deadline(batch)
        queued: list[tuple[TaskRow, TaskOptions]] = []
        for row in self.store.active():
            task = Task.model_validate(row.spec)
            options = self._options(task)
            request = self._request(row, options)
            if row.state is S.QUEUED and not self.backend.in_flight(row.runtime):
                queued.append((row, options))
                continue
            if request.group is not None:
                self.throttle.occupy(request)  # running members hold their slots first
                self._group_of[row.id] = request.group
            attempt = row.logs[-1] if row.logs else None
            job = Job(
                task_id=row.id,
                task=task,
                options=options,
                attempt=attempt,
                runtime=row.runtime,
                attempt_number=max(1, len(row.logs)),
                credentials={**options.credentials, **self.store.secrets_of(row)},
            )
            earlier = row.logs[:-1] if row.logs else []
            log.info("resuming task %s (%s)", row.id, row.state)
            self._start(request, job, earlier)
            if row.cancel_requested:
                self.running[row.id].worker.cancel()
        parents = {p for row, options in queued for p in options.after}
        states = self.store.states(sorted(parents)) if parents else {}
        for row, options in queued:
            self.place(row.id, self._request(row, options), options.after, states)
        self._wake.set()

    # --- API-facing operations -------------------------------------------

    def admit(
        self,
        task: Task,
        *,
        seen: dict[str, TaskOptions] | None = None,
    ) -> tuple[TaskRow, TaskOptions]:
        return admit(
            task,
            storage=self.storage,
            backend=self.backend,
            settings=self.settings,
            policy=self.policy,
            seen=seen,
        )

    def create(self, task: Task) -> str:
        row, options = self.admit(task)
        states = self.parent_states(options.after)
        self.store.insert_tasks([row])
        self.place(row.id, self.backend.request(row.id, options), options.after, states)
        # Dispatched in this same call, it is still QUEUED as just stored: no read back.
        self._dispatch_now(fresh=row)
        return row.id

    async def create_batch(self, request: BatchRequest) -> tuple[str, list[str]]:
        """Store a sweep, map or list of tasks in one transaction and queue its members.

        Checking and storing tens of thousands of members takes seconds: that runs in a
        thread, and the members are queued here a chunk at a time, so the server keeps
        answering meanwhile.
        """
        batch, rows, afters, states = await asyncio.to_thread(self._store_batch, request)
        self.throttle.limit(batch.id, batch.max_parallel)
        self.arm_deadline(batch)
        for start in range(0, len(rows), _CHUNK):
            for row, after in zip(
                rows[start : start + _CHUNK], afters[start : start + _CHUNK], strict=True
            ):
                member = Request(
                    task_id=row.id,
                    cpus=row.cpus,
                    memory_gb=row.memory_gb,
                    gpus=row.gpus,
                    priority=row.priority,
                    group=batch.id if batch.max_parallel else None,
                )
                self.place(row.id, member, after, states)
            await asyncio.sleep(0)
        self._dispatch_now()
        return batch.id, [r.id for r in rows]

    def _store_batch(
        self, request: BatchRequest
    ) -> tuple[BatchRow, list[TaskRow], list[tuple[str, ...]], dict[str, TaskState]]:
        """Build, check and store a batch (off the event loop: it touches no engine state)."""
        # Tens of thousands of small new objects would run the cyclic GC over and over
        # (its cost grows with the heap): pause it for the build, none of them form cycles.
        paused = gc.isenabled()
        gc.disable()
        try:
            batch, rows, afters = self.batches.build(request)
            parents = {p for after in afters for p in after} - {r.id for r in rows}
            states = self.parent_states(tuple(sorted(parents)))
            self.store.insert_tasks(rows, batch)
        finally:
            if paused:
                gc.enable()
        return batch, rows, afters, states

    def parent_states(self, after: tuple[str, ...]) -> dict[str, TaskState]:
        """The parents' states; a 400 when one does not exist."""
        if not after:
            return {}
        states = self.store.states(list(after))
        missing = [p for p in after if p not in states]
        if missing:
            raise InvalidRequest(
                f"resources.backend_parameters.after: no task with id {missing[0]!r}; "
                "name tasks that exist (or, in a batch, members as @N)"
            )
        return states

    def place(
        self, task_id: str, request: Request, after: tuple[str, ...], states: dict[str, TaskState]
    ) -> None:
        """Queue a task, or hold it until its parents are COMPLETE (or fail it if one failed)."""
        pending: set[str] = set()
        for parent in after:
            state = states.get(parent)
            if state is S.COMPLETE:
                continue
            if state is not None and is_final(state):
                self._parent_failed(task_id, parent, state)
                return
            pending.add(parent)
        if request.group is not None:
            self._group_of[task_id] = request.group
        if not pending:
            self._enqueue(request)
            return
        self.waiting[task_id] = pending
        self._held[task_id] = request
        for parent in pending:
            self.dependents.setdefault(parent, set()).add(task_id)

    def _enqueue(self, request: Request) -> None:
        if self.throttle.admit(request):
            self.queue.add(request)

    def _parent_failed(self, task_id: str, parent: str, state: TaskState) -> None:
        message = (
            f"not run: task {parent}, which this task runs after, ended {state.value}"
            if state is not S.CANCELED
            else f"not run: task {parent}, which this task runs after, was cancelled"
        )
        now = now_rfc3339()
        entry = TaskLog(system_logs=[message], end_time=now)
        if self.store.transition(task_id, S.SYSTEM_ERROR, logs=[entry]):
            self.changed(task_id)

    def cancel_wanted(self, task_id: str) -> bool:
        run = self.running.get(task_id)
        return run is not None and run.worker.cancelled.is_set()

    def cancel(self, task_id: str, reason: str | None = None) -> None:
        """Cancel a task; a no-op for a finished one (TES says so)."""
        state = self.store.get_state(task_id)
        if is_final(state):
            return
        if task_id not in self.running and state is S.QUEUED:
            logs = None
            if reason:
                entry = TaskLog(system_logs=[reason])
                logs = [*self.store.get(task_id).logs, entry]
            if self.store.transition(task_id, S.CANCELED, logs=logs):
                self._unqueue(task_id)
                self.changed(task_id)
                return
        # The task stays RUNNING until its container is gone, then becomes CANCELED.
        self.store.request_cancel(task_id)
        run = self.running.get(task_id)
        if run is not None:
            run.worker.cancel(reason)

    def _unqueue(self, task_id: str) -> None:
        self.queue.remove(task_id)
        self._held.pop(task_id, None)
        for parent in self.waiting.pop(task_id, ()):
            children = self.dependents.get(parent)
            if children is not None:
                children.discard(task_id)

    async def cancel_batch(self, batch_id: str, reason: str | None = None) -> int:
        """Cancel every unfinished member; how many there were.

        A chunk of members at a time, with a turn of the event loop between chunks: a
        batch of tens of thousands never holds up the server.  Queued members leave the
        queue (and the batch's throttle) before they are marked CANCELED, so none starts
        meanwhile; the transactions stay short, so the server's own writes never wait long.
        """
        members = await asyncio.to_thread(self.store.batch_active, batch_id)
        for start in range(0, len(members), _CHUNK):
            queued: list[str] = []
            others: list[str] = []
            for task_id, state in members[start : start + _CHUNK]:
                run = self.running.get(task_id)
                if run is not None:
                    run.worker.cancel(reason)
                    others.append(task_id)
                elif state is S.QUEUED:
                    self._unqueue(task_id)
                    group = self._group_of.get(task_id)
                    if group is not None and self.throttle.holds(task_id, group):
                        self.throttle.release(group, task_id)
                        del self._group_of[task_id]
                    queued.append(task_id)
                else:
                    others.append(task_id)
            canceled = self.store.cancel_queued(queued, others, reason)
            for task_id in queued:
                self.changed(task_id, S.CANCELED if task_id in canceled else None)
            await asyncio.sleep(0)
        self._wake.set()
        return len(members)

    def arm_deadline(self, batch: BatchRow) -> None:
        if batch.deadline is None or batch.id in self._deadlines:
            return
        delay = max(0.0, batch.deadline - time.time())
        loop = asyncio.get_running_loop()
        self._deadlines[batch.id] = loop.call_later(delay, self._batch_expired, batch)

    def _batch_expired(self, batch: BatchRow) -> None:
        self._deadlines.pop(batch.id, None)
        task = asyncio.create_task(self._expire(batch), name=f"expire-{batch.id}")
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def _expire(self, batch: BatchRow) -> None:
        limit = batch.spec.get("timeout", "its timeout")
        reason = f"canceled: batch {batch.id} ran out of time ({limit})"
        try:
            n = await self.cancel_batch(batch.id, reason)
        except Exception:
            log.exception("cancelling the members of batch %s failed", batch.id)
            return
        if n:
            log.info("batch %s timed out; cancelled %d unfinished members", batch.id, n)

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
        run = self.running.get(task_id)
        progress = None if run is None else run.worker.staged()
        return None if progress is None else {"files": progress.files, "bytes": progress.bytes}

    def attempt(self, task_id: str) -> Attempt | None:
        """The attempt in flight for this task, if any (remote workers report to it)."""
        run = self.running.get(task_id)
        return None if run is None else run.worker

    def changed(self, task_id: str, state: TaskState | None = None) -> None:
        """React to a task's new state (read from the store unless the caller knows it)."""
        if state is None:
            state = self.store.get_state(task_id)
        if not is_final(state):
            return
        event = self._waiters.pop(task_id, None)
        if event is not None:
            event.set()
        group = self._group_of.pop(task_id, None)
        if group is not None:
            for ready in self.throttle.release(group, task_id):
                self.queue.add(ready)
            self._wake.set()
        for child in sorted(self.dependents.pop(task_id, ())):
            pending = self.waiting.get(child)
            if pending is None:
                continue
            if state is not S.COMPLETE:
                self._unqueue(child)
                self._parent_failed(child, task_id, state)
                continue
            pending.discard(task_id)
            if not pending:
                del self.waiting[child]
                request = self._held.pop(child, None)
                if request is not None:
                    self._enqueue(request)
                    self._wake.set()

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
        for request in pick(self.queue, self.backend.free):
            self.queue.remove(request.task_id)
            if fresh is not None and fresh.id == request.task_id:
                row = fresh
            else:
                row = self.store.get(request.task_id)
                if row.state is not S.QUEUED:
                    continue
            task = Task.model_validate(row.spec)
            options = self._options(task)
            job = Job(
                task_id=row.id,
                task=task,
                options=options,
                runtime=row.runtime,
                attempt_number=len(row.logs) + 1,
                credentials={**options.credentials, **self.store.secrets_of(row)},
            )
            self._start(request, job, row.logs)

    def _start(self, request: Request, job: Job, earlier: list[TaskLog]) -> None:
        self.backend.free.take(request)
        worker = self.backend.start(job, _Reporter(self, job, earlier))
        run = _Running(request=request, worker=worker)
        self.running[job.task_id] = run
        run.task = asyncio.create_task(worker.run(), name=f"task-{job.task_id}")
        run.task.add_done_callback(functools.partial(self._finished, job.task_id))

    def _finished(self, task_id: str, _done: asyncio.Task[TaskState]) -> None:
        run = self.running.pop(task_id, None)
        if run is None:
            return
        self.backend.free.give(run.request)
        if run.task is not None and run.task.cancelled():
            return  # server shutting down: the attempt resumes on restart
        if self.store.get_state(task_id) is S.QUEUED:  # a retry
            if run.worker.cancelled.is_set():  # cancelled while the attempt was ending
                self.store.transition(task_id, S.CANCELED)
            else:
                self.queue.add(run.request)  # its throttle slot is still held
        self.changed(task_id)
        if not self._stopping:
            self._dispatch_now()

    def _request(self, row: TaskRow, options: TaskOptions) -> Request:
        request = self.backend.request(row.id, options)
        if row.batch_id is not None and row.batch_id in self.throttle.limits:
            request = dataclasses.replace(request, group=row.batch_id)
        return request

    def _options(self, task: Task) -> TaskOptions:
        return read_options(task.resources, OptionDefaults.of(self.settings))
