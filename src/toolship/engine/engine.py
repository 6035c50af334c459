"""The engine: persists tasks, keeps the queue, starts and cancels attempts.

Event-driven: a submission or a finished attempt wakes the dispatch loop,
which asks the pure scheduler what fits and starts it; nothing sleeps in a
polling loop.  On start-up the engine rebuilds its queue from the database
and resumes every attempt that was in flight, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass
from typing import Any

from toolship.compute.local import LocalBackend
from toolship.config import Settings
from toolship.db import Store
from toolship.engine.options import TaskOptions, read_options
from toolship.engine.scheduler import Queue, Request, pick
from toolship.engine.validate import admit
from toolship.engine.writer import ReportWriter
from toolship.models import Task
from toolship.states import TaskState, is_final
from toolship.storage import StorageRegistry
from toolship.worker import Job, Worker, WorkerEnv

__all__ = ["Engine"]

log = logging.getLogger(__name__)
S = TaskState


@dataclass
class _Running:
    request: Request
    worker: Worker
    task: asyncio.Task[TaskState] | None = None


class _Reporter:
    """Persists a worker's progress for one task (the local, in-process reporter)."""

    def __init__(self, writer: ReportWriter, task_id: str, earlier: list[dict[str, Any]]) -> None:
        self.writer = writer
        self.task_id = task_id
        self.earlier = earlier

    async def update(
        self,
        state: TaskState | None,
        attempt: dict[str, Any],
        runtime: dict[str, Any],
        *,
        wait: bool = True,
    ) -> bool:
        logs = [*self.earlier, attempt]
        return await self.writer.write(self.task_id, state, logs, runtime, wait=wait)


class Engine:
    def __init__(self, settings: Settings, store: Store, storage: StorageRegistry) -> None:
        self.settings = settings
        self.store = store
        self.storage = storage
        self.writer = ReportWriter(store)
        self.backend = LocalBackend(settings.local, settings.work_dir)
        self.queue = Queue()
        self.running: dict[str, _Running] = {}
        self._wake = asyncio.Event()
        self._waiters: dict[str, asyncio.Event] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    # --- lifecycle --------------------------------------------------------

    async def start(self) -> None:
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

    def recover(self) -> None:
        for row in self.store.active():
            task = Task.model_validate(row.spec)
            options = self._options(task)
            request = self.backend.request(row.id, options)
            if row.state is S.QUEUED:
                self.queue.add(request)
                continue
            attempt = row.logs[-1] if row.logs else None
            job = Job(
                task_id=row.id,
                task=task,
                options=options,
                attempt=attempt,
                runtime=row.runtime,
                attempt_number=max(1, len(row.logs)),
                credentials={**options.credentials, **row.secrets},
            )
            earlier = row.logs[:-1] if row.logs else []
            log.info("resuming task %s (%s)", row.id, row.state)
            self._start(request, job, earlier)
            if row.cancel_requested:
                self.running[row.id].worker.cancel()
        self._wake.set()

    # --- API-facing operations -------------------------------------------

    def create(self, task: Task) -> str:
        row, options = admit(
            task,
            storage=self.storage,
            backend=self.backend,
            default_runtime=self.settings.local.runtime,
            default_cpus=self.settings.local.default_cpus,
            default_memory_gb=self.settings.local.default_memory_gb,
        )
        self.store.insert_tasks([row])
        self.queue.add(self.backend.request(row.id, options))
        self._dispatch_now()
        return row.id

    def cancel(self, task_id: str) -> None:
        """Cancel a task; a no-op for a finished one (TES says so)."""
        state = self.store.get_state(task_id)
        if is_final(state):
            return
        if task_id in self.queue and self.store.transition(task_id, S.CANCELED):
            self.queue.remove(task_id)
            self._notify(task_id)
            return
        # The task stays RUNNING until its container is gone, then becomes CANCELED.
        self.store.request_cancel(task_id)
        run = self.running.get(task_id)
        if run is not None:
            run.worker.cancel()

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
        if run is None or "stage_context" not in run.worker.__dict__:
            return None
        progress = run.worker.stage_context.progress
        return {"files": progress.files, "bytes": progress.bytes}

    def _notify(self, task_id: str) -> None:
        """The task reached a final state: wake its waiters (who read the state themselves)."""
        event = self._waiters.pop(task_id, None)
        if event is not None:
            event.set()

    # --- dispatch ---------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self.dispatch()
            except Exception:
                log.exception("dispatch failed; retrying on the next event")

    def _dispatch_now(self) -> None:
        """Fill the freed slot at once: a wake-up of the loop task would cost a turn."""
        try:
            self.dispatch()
        except Exception:
            log.exception("dispatch failed; retrying on the next event")
            self._wake.set()

    def dispatch(self) -> None:
        for request in pick(self.queue, self.backend.free):
            self.queue.remove(request.task_id)
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
                credentials={**options.credentials, **row.secrets},
            )
            self._start(request, job, [])

    def _start(self, request: Request, job: Job, earlier: list[dict[str, Any]]) -> None:
        self.backend.free.take(request)
        env = WorkerEnv(
            work_dir=self.settings.work_dir,
            storage=self.storage,
            runtime=self.backend.runtime(job.options.runtime),
            log_tail_bytes=self.settings.local.log_tail_bytes,
            stop_grace_seconds=self.settings.local.stop_grace_seconds,
            pids_limit=self.settings.local.pids_limit,
            shared_dirs=tuple(self.settings.local.shared_dirs),
            transfers=self.settings.storage.max_concurrency,
            transfer_attempts=self.settings.storage.attempts,
        )
        worker = Worker(job, env, _Reporter(self.writer, job.task_id, earlier))
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
        self._notify(task_id)  # the worker's final report is committed by now
        if not self._stopping:
            self._dispatch_now()

    def _options(self, task: Task) -> TaskOptions:
        return read_options(
            task.resources,
            default_runtime=self.settings.local.runtime,
            default_cpus=self.settings.local.default_cpus,
            default_memory_gb=self.settings.local.default_memory_gb,
        )
