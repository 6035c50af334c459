"""The Slurm backend: each attempt is one batch job whose script runs ``toolship worker``.

Slurm does the placement; the worker on the node does what the local
executor does (stage in, run the executors, stage out) and reports over HTTP
with a per-task token.  The server follows all jobs with one ``squeue`` call
per tick: a job that ends without its worker reporting, vanishes, or loses its
node ends the attempt ``SYSTEM_ERROR`` with Slurm's own words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from toolship.compute.base import Capacity, RemoteAttempt, Request
from toolship.compute.hpc import (
    CommandFailed,
    CommandRunner,
    JobStatus,
    Phase,
    Poller,
    parse_job_id,
)
from toolship.compute.slurm_format import (
    JOB_ID,
    SINFO,
    SQUEUE,
    TRANSIENT,
    UNFINISHED,
    batch_script,
    check_partitions,
    parse_sinfo,
    parse_squeue,
    parse_unfinished,
)
from toolship.config import Settings
from toolship.errors import ResourcesUnavailable
from toolship.models import TaskLog
from toolship.options import TaskOptions
from toolship.records import Job, Reporter, RuntimeRecord, SlurmRecord, WorkerJob, WorkerSettings
from toolship.secrets import ensure_secret, worker_token, write_private
from toolship.states import TaskState, is_final
from toolship.storage.base import Progress
from toolship.timeutil import now_rfc3339
from toolship.worker.worker import read_tail

__all__ = ["SlurmAttempt", "SlurmBackend"]

log = logging.getLogger(__name__)
S = TaskState
# A job that ended is given this long for its worker's last report to arrive.
REPORT_GRACE_SECONDS = 4.0
# A job that ended before its worker reported anything ran nothing of the task (Slurm
# lost its batch script, the node could not start the worker): it is submitted again,
# this many times at most per attempt, before the attempt ends SYSTEM_ERROR.
MAX_RESUBMITS = 2


# --- the backend ------------------------------------------------------------------


# What sbatch says when slurmctld dropped the connection after reading the request: the
# job may or may not have been taken.
_BROKEN = "connection reset by peer"


class SlurmBackend:
    name = "slurm"
    # Jobs live in Slurm, and any replica (the same Slurm user) follows them with squeue:
    # a dead replica's attempts resume on its adopter, wherever that runs.
    host_bound = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slurm = settings.slurm
        self.work_dir = settings.work_dir
        # Slurm queues and places; toolship hands every task over at once (submission
        # itself is throttled by the command runner).
        self.free = Capacity(math.inf, math.inf, 1 << 30)
        self.partitions = list(self.slurm.partitions)
        self.attempts: dict[str, SlurmAttempt] = {}
        self.runner = CommandRunner(
            concurrency=self.slurm.submit_concurrency,
            attempts=self.slurm.submit_attempts,
            transient=TRANSIENT,
        )
        self.poller = Poller(
            interval=self.slurm.poll_seconds,
            query=self._squeue,
            deliver=self._reconcile,
            active=lambda: any(a.slurm.job_id is not None for a in self.attempts.values()),
        )
        self.worker_secret = b""
        # Jobs found at start-up (and at each adoption) for attempts whose job id was
        # never recorded: submitted by a server that died before it wrote the id.
        self.unrecorded: dict[tuple[str, int], str] = {}

    # --- lifecycle ----------------------------------------------------------

    async def open(self) -> None:
        secret_file = self.slurm.secret_file or self.settings.home / "worker.secret"
        self.worker_secret = ensure_secret(secret_file)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if not self.partitions:
            self.partitions = parse_sinfo(await self.runner.run(SINFO))
            log.info("Slurm partitions: %s", self.partitions)
        await self._find_unrecorded("at start-up")
        self.poller.start()

    async def adopting(self) -> None:
        await self._find_unrecorded("for the attempts of a replica adopted")

    async def _find_unrecorded(self, when: str) -> None:
        """List this user's unfinished toolship jobs (one squeue): an attempt that starts
        with no job id recorded takes its job from here rather than submit another."""
        try:
            self.unrecorded = parse_unfinished(await self.runner.run(UNFINISHED))
        except CommandFailed as exc:
            log.warning("could not list this user's Slurm jobs %s: %s", when, exc)

    async def close(self) -> None:
        """Stop following the jobs (they run on); their workers' requests are no longer
        this server's to answer (an attempt never started is forgotten here too)."""
        await self.poller.stop()
        self.attempts.clear()

    @property
    def server_url(self) -> str:
        server = self.settings.server
        return (
            self.slurm.server_url or server.advertise_url or f"http://{server.host}:{server.port}"
        )

    # --- what the engine asks -----------------------------------------------

    def check(self, options: TaskOptions) -> None:
        check_partitions(options, self.partitions, self.slurm.default_partition)
        if options.disk_gb is not None:
            # Inputs and outputs live in the shared work directory, not on the node.
            self.work_dir.mkdir(parents=True, exist_ok=True)
            free_gb = shutil.disk_usage(self.work_dir).free / 1024**3
            if options.disk_gb > free_gb:
                raise ResourcesUnavailable(
                    f"the task asks for {options.disk_gb:g} GiB of disk, but the shared work "
                    f"directory {self.work_dir} has {free_gb:.1f} GiB free; ask for less (--disk)"
                )

    def request(self, task_id: str, options: TaskOptions) -> Request:
        return Request(task_id=task_id, cpus=0, memory_gb=0.0, priority=options.priority)

    def in_flight(self, runtime: RuntimeRecord) -> bool:
        return runtime.slurm is not None and runtime.slurm.job_id is not None

    def remote_attempt(self, task_id: str) -> RemoteAttempt | None:
        return self.attempts.get(task_id)

    def start(self, job: Job, reporter: Reporter) -> SlurmAttempt:
        """The attempt, known to its worker's requests at once (before it first runs)."""
        attempt = SlurmAttempt(self, job, reporter)
        self.attempts[job.task_id] = attempt
        return attempt

    # --- Slurm commands ----------------------------------------------------

    async def submit(self, attempt: SlurmAttempt) -> str:
        job = attempt.job
        task_dir = self.work_dir / job.task_id
        text = batch_script(
            job.options,
            self.slurm,
            task_id=job.task_id,
            attempt=job.attempt_number,
            task_dir=task_dir,
            server_url=self.server_url,
            account=self.settings.access.slurm_accounts.get(job.owner or ""),
        )
        token = worker_token(self.worker_secret, job.task_id)
        # The files are written off the event loop (on a shared file system a write can
        # take a while), like the sbatch call itself.
        script = await asyncio.to_thread(
            _write_job_files, task_dir, job.attempt_number, token, text
        )
        for tries in range(1, self.slurm.submit_attempts + 1):
            try:
                out = await self.runner.run(["sbatch", "--parsable", str(script)])
                return parse_job_id(JOB_ID, out)
            except CommandFailed as exc:
                if _BROKEN not in str(exc).lower() or tries == self.slurm.submit_attempts:
                    raise
                log.warning("sbatch for task %s: %s; looking for the job before sending it "
                            "again", job.task_id, exc)  # fmt: skip
            # slurmctld broke the connection mid-call (it was restarting): it may have taken
            # the job.  The attempt's job is looked for (by its comment) before another goes.
            await asyncio.sleep(1.0)
            found = parse_unfinished(await self.runner.run(UNFINISHED))
            job_id = found.get((job.task_id, job.attempt_number))
            if job_id is not None:
                return job_id
        raise AssertionError("unreachable")

    async def scancel(self, job_id: str) -> None:
        try:
            await self.runner.run(["scancel", job_id])
        except CommandFailed as exc:
            log.warning("scancel %s: %s", job_id, exc)
        self.poller.poke()

    async def _squeue(self) -> dict[str, JobStatus]:
        return parse_squeue(await self.runner.run(SQUEUE))

    def _reconcile(self, statuses: Mapping[str, JobStatus]) -> None:
        now = time.monotonic()
        for attempt in list(self.attempts.values()):
            job_id = attempt.slurm.job_id
            if job_id is not None:
                attempt.observe(statuses.get(job_id), now)


def _write_job_files(task_dir: Path, attempt: int, token: str, script: str) -> Path:
    """The attempt's worker token (0600) and batch script; the script's path."""
    task_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(task_dir / "worker.token", token + "\n")
    path = task_dir / f"slurm-{attempt}.sh"
    path.write_text(script)
    return path


class SlurmAttempt:
    """The server's side of one attempt running as a Slurm job."""

    def __init__(self, backend: SlurmBackend, job: Job, reporter: Reporter) -> None:
        self.backend = backend
        self.job = job
        self.reporter = reporter
        self.runtime: RuntimeRecord = job.runtime.model_copy()
        self.slurm: SlurmRecord = (job.runtime.slurm or SlurmRecord()).model_copy()
        self.attempt: TaskLog = job.attempt or TaskLog(system_logs=list(job.runtime.warnings))
        self.done = asyncio.Event()
        self.final: TaskState | None = None
        self.cancelled = asyncio.Event()
        self.cancel_reason = "canceled by request"
        self._ending = False
        self._missing = 0
        self._ended_seen: float | None = None
        self._resubmits = 0

    # --- driven by the engine ------------------------------------------------

    async def run(self) -> TaskState:
        task_id = self.job.task_id
        self.backend.attempts[task_id] = self
        try:
            if self.slurm.job_id is None:
                if self.cancelled.is_set():
                    return await self._end(S.CANCELED, self.cancel_reason)
                found = self.backend.unrecorded.pop((task_id, self.job.attempt_number), None)
                if found is not None:
                    job_id = found
                    message = (
                        f"found Slurm job {job_id}, submitted for this attempt before the "
                        "server restarted; not submitting it again"
                    )
                else:
                    try:
                        job_id = await self.backend.submit(self)
                    except (CommandFailed, OSError) as exc:
                        return await self._end(S.SYSTEM_ERROR, f"could not submit to Slurm: {exc}")
                    message = f"submitted to Slurm as job {job_id}"
                self.slurm.job_id = job_id
                self._system_log(message)
                await self._save()
                if self.cancelled.is_set():
                    await self.backend.scancel(job_id)
            await self.done.wait()
            return self.final or S.SYSTEM_ERROR
        finally:
            if self.backend.attempts.get(task_id) is self:
                del self.backend.attempts[task_id]

    def cancel(self, reason: str | None = None) -> None:
        if self.cancelled.is_set():
            return
        self.cancel_reason = reason or "canceled by request"
        self.cancelled.set()
        job_id = self.slurm.job_id
        if job_id is not None and not self.done.is_set():
            asyncio.get_running_loop().create_task(self.backend.scancel(job_id))

    @property
    def number(self) -> int:
        return self.job.attempt_number

    def staged(self) -> Progress | None:
        return None  # the worker on the node stages

    def _system_log(self, message: str) -> None:
        if self.attempt.system_logs is None:
            self.attempt.system_logs = []
        self.attempt.system_logs.append(message)

    # --- reports from the worker ------------------------------------------------

    def worker_job(self) -> WorkerJob:
        job = self.job
        settings = self.backend.settings
        started = self.attempt.start_time is not None
        runtime = self.runtime.model_copy(update={"slurm": self.slurm})
        if not started:
            runtime.warnings = list(self.attempt.system_logs or [])
        # A worker running as root on the node runs tasks as local.task_user, whatever
        # user the server itself runs as (so not settings.task_user).
        uid, gid = settings.local.task_user.split(":")
        return WorkerJob(
            task_id=job.task_id,
            task=job.task,
            defaults=job.options.pinned(),
            attempt=self.attempt if started else None,
            runtime=runtime,
            attempt_number=job.attempt_number,
            credentials=job.credentials,
            owner=job.owner,
            env=WorkerSettings(
                work_dir=self.backend.work_dir,
                log_tail_bytes=settings.local.log_tail_bytes,
                stop_grace_seconds=settings.local.stop_grace_seconds,
                pids_limit=settings.local.pids_limit,
                shared_dirs=list(settings.local.shared_dirs),
                writable_shared_dirs=list(settings.local.writable_shared_dirs),
                transfers=settings.storage.max_concurrency,
                transfer_attempts=settings.storage.attempts,
                task_user=(int(uid), int(gid)),
                task_subids=settings.task_subids,
                output_owner=settings.output_owner,
                own_files=settings.own_files,
                pull_from=settings.images.pull_from,
                accounting=settings.local.accounting,
            ),
            storage=settings.storage,
        )

    async def update(
        self, state: TaskState | None, attempt: TaskLog, runtime: RuntimeRecord
    ) -> bool:
        if self.done.is_set() or self._ending:
            return False
        cancelled = self.cancelled.is_set()
        if state is not None and is_final(state) and cancelled and state is not S.COMPLETE:
            state = S.CANCELED  # the executor died of our own cancel signal
        self.attempt = attempt
        self.runtime = runtime.model_copy(update={"slurm": self.slurm})
        ok = await self.reporter.update(state, attempt, self.runtime)
        if state is not None and is_final(state):
            self.final = state
            self.done.set()
        return ok

    # --- reconcile ----------------------------------------------------------------

    def observe(self, status: JobStatus | None, now: float) -> None:
        """What one squeue tick says about this attempt's job."""
        if self.done.is_set() or self._ending:
            return
        job_id = self.slurm.job_id
        if status is None:
            self._missing += 1
            if self._missing >= 2:
                self._spawn_end(
                    S.CANCELED if self.cancelled.is_set() else S.SYSTEM_ERROR,
                    f"Slurm job {job_id} vanished: squeue no longer lists it and its worker "
                    "never reported an end",
                )
            return
        self._missing = 0
        if status.nodes and status.phase is not Phase.WAITING:
            self.slurm.nodes = status.nodes
        self.slurm.state = status.state
        nodes = status.nodes or self.slurm.nodes or "?"
        reason = f", reason {status.reason}" if status.reason else ""
        if status.phase is Phase.LOST:
            self._spawn_end(
                S.SYSTEM_ERROR,
                f"Slurm job {job_id}: node(s) {nodes} failed ({status.state}{reason}); "
                "the attempt's result is unknown",
            )
            return
        if status.phase is not Phase.ENDED:
            return
        if self._ended_seen is None:
            self._ended_seen = now
        if now - self._ended_seen < REPORT_GRACE_SECONDS:
            return  # the worker's last report may still be on its way
        if status.state == "CANCELLED" and self.cancelled.is_set():
            self._spawn_end(S.CANCELED, self.cancel_reason)
            return
        what = {
            "CANCELLED": "was cancelled outside toolship (scancel?)",
            "TIMEOUT": "hit its Slurm time limit (--time)",
            "OUT_OF_MEMORY": "ran out of memory",
        }.get(status.state, f"ended {status.state}")
        tail = read_tail(
            self.backend.work_dir / self.job.task_id / f"slurm-{self.job.attempt_number}.out",
            2000,
        ).strip()
        output = f"; the job's output ends with: {tail}" if tail else ""
        if self._never_started() and self._resubmits < MAX_RESUBMITS:
            self._resubmits += 1
            self._ending = True  # until the new job is recorded
            why = f"Slurm job {job_id} on {nodes} {what}{reason} before its worker started"
            asyncio.get_running_loop().create_task(self._resubmit(why + output))
            return
        self._spawn_end(
            S.SYSTEM_ERROR,
            f"Slurm job {job_id} on {nodes} {what}{reason} without its worker reporting an end"
            + output,
        )

    def _never_started(self) -> bool:
        """Nothing of the attempt ran: its worker reported no step (it reports before each)."""
        return self.runtime.phase is None and self.attempt.start_time is None

    async def _resubmit(self, why: str) -> None:
        try:
            job_id = await self.backend.submit(self)
        except (CommandFailed, OSError) as exc:
            await self._end(S.SYSTEM_ERROR, f"{why}; submitting it again failed: {exc}")
            return
        message = f"{why}; nothing of it ran, so it was submitted again as job {job_id}"
        log.info("task %s: %s", self.job.task_id, message)
        self._system_log(message)
        self.slurm = SlurmRecord(job_id=job_id)
        self._ended_seen = None
        self._missing = 0
        await self._save()
        self._ending = False
        if self.cancelled.is_set():
            await self.backend.scancel(job_id)

    def _spawn_end(self, state: TaskState, message: str) -> None:
        self._ending = True
        asyncio.get_running_loop().create_task(self._end(state, message))

    async def _end(self, state: TaskState, message: str) -> TaskState:
        self._ending = True
        log.info("task %s: %s", self.job.task_id, message)
        self._system_log(message)
        if self.attempt.start_time is not None:
            self.attempt.end_time = now_rfc3339()
        self.runtime = self.runtime.model_copy(update={"slurm": self.slurm, "phase": "done"})
        with contextlib.suppress(Exception):
            await self.reporter.update(state, self.attempt, self.runtime)
        self.final = state
        self.done.set()
        return state

    async def _save(self) -> None:
        """Record the job id, written behind with other reports (within tens of ms).

        A crash before it is written loses nothing: the job names its attempt in its
        comment, and the restarted server finds it (``SlurmBackend.unrecorded``).
        """
        self.runtime = self.runtime.model_copy(update={"slurm": self.slurm})
        await self.reporter.update(None, self.attempt, self.runtime, wait=False)
