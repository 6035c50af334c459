"""An in-memory backend: attempts end as scripted, on a clock the test moves.

Nothing runs.  An executor's command says how it ends (``["exit", "3"]``,
``["sleep", "30"]``, ``["echo", "hi"]``, ``["fail", "why"]``; see :func:`run_of`),
or a test scripts a task's attempts by name (:meth:`FakeBackend.script`).  The
attempt reports through the engine's :class:`~toolship.records.Reporter` exactly
as the real worker does (INITIALIZING, RUNNING, one TES executor log per executor,
start and end times, then the final state), honours cancel and the task's
timeout, and resumes from its runtime record after a restart: an executor that
was running when the server stopped ends when it would have, on the same clock.

With it the engine and the API are tested in-process, in milliseconds, with no
container engine; the real backends are tested apart, against the real thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from toolship.compute import BackendFactory
from toolship.compute.base import Capacity, RemoteAttempt, Request
from toolship.errors import ResourcesUnavailable
from toolship.models import ExecutorLog, TaskLog
from toolship.options import TaskOptions
from toolship.records import Job, Reporter, RuntimeRecord
from toolship.states import TaskState
from toolship.storage.base import Progress
from toolship.timeutil import parse_rfc3339
from toolship.worker.worker import timed_out

__all__ = ["FakeAttempt", "FakeBackend", "FakeClock", "Run", "run_of"]

S = TaskState


@dataclass(frozen=True, slots=True)
class Run:
    """How one executor of one attempt ends."""

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0  # on the backend's clock
    # The attempt ends SYSTEM_ERROR with this message instead of running the executor.
    system_error: str | None = None


def run_of(command: Sequence[str]) -> Run:
    """What an executor's own command says: ``exit N``, ``sleep N``, ``echo …``, ``fail …``.

    ``false`` exits 1; any other command succeeds at once with no output.
    """
    match list(command):
        case ["exit", code]:
            return Run(exit_code=int(code))
        case ["sleep", seconds]:
            return Run(seconds=float(seconds))
        case ["echo", *words]:
            return Run(stdout=" ".join(words) + "\n")
        case ["fail", *why]:
            return Run(system_error=" ".join(why) or "scripted system failure")
        case ["false"]:
            return Run(exit_code=1)
        case _:
            return Run()


class FakeClock:
    """Seconds since the epoch that move only when the test advances them.

    Thread-safe: Starlette's TestClient runs the app's event loop in a thread of its
    own, and the test advances the clock from its thread.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._sleepers: list[tuple[float, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def time(self) -> float:
        with self._lock:
            return self._now

    def rfc3339(self) -> str:
        moment = datetime.fromtimestamp(self.time(), UTC)
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")

    def advance(self, seconds: float) -> None:
        """Move the clock on, waking every sleeper whose time has come."""
        with self._lock:
            self._now += seconds
            due = [s for s in self._sleepers if s[0] <= self._now]
            self._sleepers = [s for s in self._sleepers if s[0] > self._now]
        for _, loop, future in due:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future)

    async def sleep_until(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (when, loop, future)
        with self._lock:
            if when <= self._now:
                return
            self._sleepers.append(entry)
        try:
            await future
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._sleepers.remove(entry)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class FakeBackend:
    """The backend protocol in memory; a test hands it to ``create_app(backend=…)``."""

    name = "fake"
    worker_secret = b""  # its attempts run in this process: no worker calls in

    def __init__(
        self,
        *,
        clock: FakeClock | None = None,
        cpus: int = 4,
        memory_gb: float = 16.0,
        gpus: int = 0,
        host_bound: bool = True,
    ) -> None:
        self.clock = clock or FakeClock()
        # True: like the local backend, a dead replica's attempt is lost to other hosts;
        # False: like Slurm, it resumes on its adopter (from its runtime record).
        self.host_bound = host_bound
        self.total = Capacity(float(cpus), memory_gb, gpus)
        self.free = Capacity(float(cpus), memory_gb, gpus)
        self.scripts: dict[str, list[Run]] = {}
        self.attempts: list[FakeAttempt] = []  # every attempt started or resumed, in order
        self.is_open = False

    def script(self, name: str, *runs: Run) -> None:
        """Attempt n of a task named ``name`` runs each executor as ``runs[n-1]``.

        The last run repeats for later attempts; the executors' commands are ignored.
        """
        self.scripts[name] = list(runs)

    def factory(self) -> BackendFactory:
        """What ``create_app(backend=…)`` takes: it hands out this backend."""
        return lambda _settings, _storage: self

    def running(self) -> list[str]:
        """Ids of the tasks whose attempts have not ended."""
        return [a.job.task_id for a in self.attempts if not a.ended]

    def sleeping(self) -> list[str]:
        """Ids of the tasks whose executors wait for the clock (a test then advances it)."""
        return [a.job.task_id for a in self.attempts if a.sleeping]

    # --- the backend protocol ----------------------------------------------

    async def open(self) -> None:
        self.is_open = True

    async def close(self) -> None:
        self.is_open = False

    async def adopting(self) -> None:
        return None  # every attempt resumes from its runtime record

    def check(self, options: TaskOptions) -> None:
        cpus, memory_gb = options.cpus * options.nodes, options.memory_gb * options.nodes
        gpus = options.gpus * options.nodes
        if cpus > self.total.cpus or memory_gb > self.total.memory_gb or gpus > self.total.gpus:
            raise ResourcesUnavailable(
                f"the task asks for more than the fake backend has: {cpus} CPU cores, "
                f"{memory_gb:g} GiB, {gpus} GPUs (it offers {self.total.cpus:g}, "
                f"{self.total.memory_gb:g} GiB, {self.total.gpus})"
            )

    def request(self, task_id: str, options: TaskOptions) -> Request:
        return Request.on_this_machine(task_id, options)

    def start(self, job: Job, reporter: Reporter) -> FakeAttempt:
        name = job.task.name or ""
        script = self.scripts.get(name)
        runs = None
        if script:
            run = script[min(job.attempt_number, len(script)) - 1]
            runs = [run] * len(job.task.executors)
        attempt = FakeAttempt(job, reporter, self.clock, runs)
        self.attempts.append(attempt)
        return attempt

    def in_flight(self, runtime: RuntimeRecord) -> bool:
        return False  # like the local backend: an attempt leaves QUEUED before it runs

    def remote_attempt(self, task_id: str) -> RemoteAttempt | None:
        return None


class _Stopped(Exception):
    """The attempt was cancelled (or its report refused) between two steps."""


class FakeAttempt:
    """One scripted attempt, reporting like :class:`toolship.worker.worker.Worker`."""

    def __init__(
        self, job: Job, reporter: Reporter, clock: FakeClock, runs: list[Run] | None
    ) -> None:
        self.job = job
        self.reporter = reporter
        self.clock = clock
        self.runs = runs or [run_of(ex.command) for ex in job.task.executors]
        self.cancelled = asyncio.Event()
        self.cancel_reason = "canceled by request"
        self.ended = False
        self.sleeping = False
        self.attempt: TaskLog = job.attempt or TaskLog(system_logs=list(job.runtime.warnings))
        self.rt: RuntimeRecord = job.runtime.model_copy()

    def cancel(self, reason: str | None = None) -> None:
        self.cancel_reason = reason or "canceled by request"
        self.cancelled.set()

    def staged(self) -> Progress | None:
        return None  # nothing is staged

    async def run(self) -> TaskState:
        try:
            return await self._attempt()
        except _Stopped:
            return await self._finish(S.CANCELED, self.cancel_reason)

    async def _report(self, state: TaskState | None = None, *, wait: bool = True) -> None:
        if not await self.reporter.update(state, self.attempt, self.rt, wait=wait):
            raise _Stopped
        if self.cancelled.is_set() and state is not None:
            raise _Stopped

    async def _finish(self, state: TaskState, message: str | None = None) -> TaskState:
        if message:
            self.attempt.system_logs = [*(self.attempt.system_logs or []), message]
        self.attempt.end_time = self.clock.rfc3339()
        self.rt.phase = "done"
        self.ended = True
        await self.reporter.update(state, self.attempt, self.rt)
        return state

    async def _attempt(self) -> TaskState:
        if self.rt.phase in (None, "staging"):
            self.rt.phase = "staging"
            if self.job.attempt is None:
                self.attempt.start_time = self.clock.rfc3339()
                await self._report(S.INITIALIZING)
            self.rt.phase, self.rt.executor = "run", 0
            if self.job.options.timeout:
                self.rt.deadline = self.clock.time() + self.job.options.timeout
            await self._report(S.RUNNING, wait=False)
        if self.rt.phase == "run":
            ended = await self._executors()
            if ended is not None:
                return ended
        return await self._finish(S.EXECUTOR_ERROR if self.rt.failed else S.COMPLETE)

    async def _executors(self) -> TaskState | None:
        """Run the executors from the recorded index on; a state if the attempt must end."""
        executors = self.job.task.executors
        while (index := self.rt.executor or 0) < len(executors):
            run = self.runs[index]
            if run.system_error is not None:
                return await self._finish(S.SYSTEM_ERROR, run.system_error)
            if self.rt.launching != index or self.rt.exec_start is None:
                # (else it was launched before a restart, and ends when it would have)
                self.rt.launching, self.rt.exec_start = index, self.clock.rfc3339()
                await self._report()
            started = parse_rfc3339(self.rt.exec_start).timestamp()
            why = await self._wait(started + run.seconds)
            code = {"exit": run.exit_code, "canceled": 143, "timeout": 137}[why]
            self.attempt.logs.append(
                ExecutorLog(
                    start_time=self.rt.exec_start,
                    end_time=self.clock.rfc3339(),
                    exit_code=code,
                    stdout=run.stdout,
                    stderr=run.stderr,
                )
            )
            self.rt.executor, self.rt.launching = index + 1, None
            if why == "canceled":
                raise _Stopped
            if why == "timeout":
                message = timed_out(index, self.job.options.timeout or 0)
                return await self._finish(S.EXECUTOR_ERROR, message)
            if code != 0 and not executors[index].ignore_error:
                self.rt.phase, self.rt.failed = "outputs", True
                await self._report(wait=False)
                return None
            await self._report(wait=False)
        self.rt.phase, self.rt.failed = "outputs", False
        return None

    async def _wait(self, until: float) -> str:
        """Sleep on the clock until ``until``: "exit", or "canceled"/"timeout" if sooner."""
        deadline = self.rt.deadline
        wake = until if deadline is None else min(until, deadline)
        sleeping = asyncio.ensure_future(self.clock.sleep_until(wake))
        stopping = asyncio.ensure_future(self.cancelled.wait())
        self.sleeping = True
        try:
            await asyncio.wait({sleeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.sleeping = False
            sleeping.cancel()
            stopping.cancel()
        if self.cancelled.is_set():
            return "canceled"
        return "exit" if wake == until else "timeout"
