"""One attempt of one task, from an empty directory to a final state.

The worker is resumable: everything it needs to find its place again (phase,
executor index, the wrapper's pid, the deadline) is reported as the
``runtime`` record before it acts, so a server that restarts hands the same
record back and the worker continues — following a still-running executor,
never starting it a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import shlex
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolship.errors import RuntimeUnavailable, StagingError
from toolship.models import Executor, ExecutorLog, OutputFileLog, TaskLog
from toolship.options import node_count
from toolship.records import Job, Reporter, RuntimeRecord
from toolship.runtime import ExecSpec, IdMap, Mount, Runtime
from toolship.runtime.base import RunImage
from toolship.runtime.container import pullable
from toolship.runtime.gpus import Gpu, GpuSampler, GpuUsage, gpu_metadata
from toolship.runtime.keeper import Keeper
from toolship.runtime.launch import Launched, find_launched, launch, run_quietly, stop
from toolship.runtime.usage import cgroup_name, read_usage, remove_cgroup
from toolship.states import TaskState
from toolship.storage import StageContext, StorageRegistry
from toolship.storage.base import Progress
from toolship.supply.hashes import record_hash
from toolship.supply.images import ImageUse, image_metadata, pinned
from toolship.timeutil import now_rfc3339, parse_rfc3339
from toolship.units import format_bytes, format_duration
from toolship.worker import taskfs
from toolship.worker.diskfull import explain
from toolship.worker.inputs import check_inputs, hash_mounted
from toolship.worker.layout import AttemptLayout, plan_layout
from toolship.worker.outputs import collect_outputs
from toolship.worker.ranks import (
    RANK_VARIABLES,
    Ranks,
    close_pod,
    first_failure,
    local_ranks,
    open_pod,
    pod_name,
    rank_name,
    read_rank_exits,
)
from toolship.worker.staging import SharedDirs, StagedFile, prepare_inputs, read_manifest
from toolship.worker.streams import finish_streams, open_stdin
from toolship.worker.testpoints import pause

__all__ = ["Worker", "WorkerEnv", "read_tail", "timed_out"]

# The thread counts of OpenMP, OpenBLAS, MKL and numexpr: the task's cores by default.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS")  # fmt: skip
# The only rank of a task that asked for nodes = 1: it sees the variables and hostfile of
# the ranks of a multi-node task (so `torchrun --nnodes $WORLD_SIZE …` runs unchanged),
# with itself as the main address.
_ONLY_RANK = local_ranks(1)

log = logging.getLogger(__name__)
S = TaskState


@dataclass
class WorkerEnv:
    work_dir: Path
    storage: StorageRegistry
    runtime: Runtime
    transfers: int = 8  # files moved at once
    transfer_attempts: int = 4
    log_tail_bytes: int = 64 * 1024
    stop_grace_seconds: int = 2
    pids_limit: int = 4096
    shared_dirs: tuple[Path, ...] = ()
    writable_shared_dirs: tuple[Path, ...] = ()  # inside shared_dirs, resolved: inputs rw
    ranks: Ranks | None = None  # multi-node tasks: how each executor runs once per rank
    accounting: bool = False  # measure CPU and peak memory through a cgroup per attempt
    # Extra container labels (on Slurm: the job id, for the node epilog's clean-up).
    labels: dict[str, str] = field(default_factory=dict)
    user: tuple[int, int] = field(default_factory=lambda: (os.getuid(), os.getgid()))
    idmap: IdMap | None = None  # containers run as root of this user namespace
    # Registries whose images pinned by digest this host may pull (images.pull_from).
    pull_from: tuple[str, ...] = ()
    # The GPUs the executors get (runtime.gpus): None, the server knows no GPUs (the
    # environment is left alone); (), the task asked for none and must see none.
    gpus: tuple[Gpu, ...] | None = None
    gpu_sample_seconds: float = 0.5  # NVML sampling of those GPUs' use (0: off)
    # The server's keeper starts the executors (None: an `sh` wrapper per executor).
    keeper: Keeper | None = None


class _Stopped(Exception):
    """The task was cancelled while the worker was between steps."""


def read_tail(path: Path, limit: int) -> str:
    """The end of one of the server's own files (a capture, a batch job's output), as text."""
    return taskfs.read_tail(path, limit).decode("utf-8", errors="replace")


class Worker:
    """One attempt, driven from its runtime record: the same code here and on a compute node.

    The local backend runs it in the server's process; on Slurm, ``toolship worker``
    runs it on the node.  Only the :class:`Reporter` differs (the engine's writer, or
    HTTP to the server), so resuming, cancelling and reporting behave the same
    everywhere.  Its state is two records, the attempt's TES log and the runtime
    record, which it reports before every step it cannot take twice: a restart
    hands them back and the worker continues from there.
    """

    def __init__(self, job: Job, env: WorkerEnv, reporter: Reporter) -> None:
        self.job = job
        self.env = env
        self.reporter = reporter
        # What the task's owner may reach (file:// roots naming {user}: its own).
        self.storage = env.storage.for_owner(job.owner)
        self.cancelled = asyncio.Event()
        self.cancel_reason = "canceled by request"
        self._waking: asyncio.Future[str] | None = None  # what _wait sleeps on
        self._context: StageContext | None = None  # made by the first transfer
        self._gpu_usage: GpuUsage | None = None  # what the GPUs did, when NVML sampled them
        self.layout: AttemptLayout = plan_layout(
            job.task, env.work_dir / job.task_id / str(job.attempt_number)
        )
        self.attempt: TaskLog = job.attempt or TaskLog(system_logs=list(job.runtime.warnings))
        self.rt: RuntimeRecord = job.runtime.model_copy()
        if self.rt.attempt_dir is None:
            self.rt.attempt_dir = str(self.layout.base)
        if self.rt.runtime is None:
            self.rt.runtime = env.runtime.name

    def cancel(self, reason: str | None = None) -> None:
        self.cancel_reason = reason or "canceled by request"
        self.cancelled.set()
        _settle(self._waking, "canceled")

    def staged(self) -> Progress | None:
        return None if self._context is None else self._context.progress

    @property
    def stage_context(self) -> StageContext:
        if self._context is None:
            pool = ThreadPoolExecutor(
                self.env.transfers, thread_name_prefix=f"stage-{self.job.task_id}"
            )
            self._context = StageContext(
                pool=pool,
                credentials=self.job.credentials,
                attempts=self.env.transfer_attempts,
                concurrency=self.env.transfers,
            )
        return self._context

    def _record_hashes(self, files: list[StagedFile], *, outputs: bool = False) -> None:
        """sha256 of every staged byte, in the attempt's TES metadata (for provenance)."""
        meta = self._metadata()
        for f in files:
            if f.sha256:
                record_hash(meta, f.path, f.sha256, output=outputs)

    def _record_image(self, index: int, image: str, found: RunImage | None) -> None:
        """Which image executor ``index`` ran: its manifest digest and id (provenance).

        A reference pinned by digest is that digest; otherwise what the runtime found
        when the executor started (a tag moved later does not change it).
        """
        if not self.env.runtime.isolated:
            return  # the process runtime runs no image
        digest = pinned(image) or (found.digest if found is not None else "")
        image_id = found.image_id if found is not None else ""
        self._metadata().update(image_metadata(ImageUse(index, image, digest, image_id)))

    def _metadata(self) -> dict[str, str]:
        if self.attempt.metadata is None:
            self.attempt.metadata = {}
        return self.attempt.metadata

    # --- reporting ----------------------------------------------------------

    async def _report(self, state: TaskState | None = None, *, wait: bool = True) -> None:
        """Persist progress; ``wait=False`` for what nothing that follows depends on."""
        if not await self.reporter.update(state, self.attempt, self.rt, wait=wait):
            raise _Stopped
        if self.cancelled.is_set() and state is not None:
            raise _Stopped

    def _system_log(self, message: str) -> None:
        if self.attempt.system_logs is None:
            self.attempt.system_logs = []
        self.attempt.system_logs.append(message)

    def _system_log_once(self, message: str) -> None:
        """A system log a step resumed after a restart would otherwise say twice."""
        if message not in (self.attempt.system_logs or []):
            self._system_log(message)

    async def _finish(self, state: TaskState, message: str | None = None) -> TaskState:
        if message:
            self._system_log(message)
        self.attempt.end_time = now_rfc3339()
        self.rt.phase = "done"
        self._account()
        if self.env.gpus:
            run = sum(_seconds(e.start_time, e.end_time) for e in self.attempt.logs)
            self._metadata().update(gpu_metadata(self.env.gpus, run, self._gpu_usage))
        await pause("final", self.job)
        await self.reporter.update(state, self.attempt, self.rt)
        if self.env.accounting:  # rmdir in every cgroup hierarchy: after the state is seen
            name = cgroup_name(self.job.task_id, self.job.attempt_number)
            asyncio.get_running_loop().run_in_executor(None, remove_cgroup, name)
        return state

    def _account(self) -> None:
        """Record the attempt's CPU seconds and peak memory (TES TaskLog metadata)."""
        if not self.env.accounting:
            return
        usage = read_usage(cgroup_name(self.job.task_id, self.job.attempt_number))
        if usage is not None:
            meta = self._metadata()
            meta["toolship.cpu_seconds"] = f"{usage.cpu_seconds:.3f}"
            meta["toolship.peak_memory_bytes"] = str(usage.peak_memory_bytes)

    async def _sample_gpus(self) -> GpuSampler | None:
        """Start sampling the attempt's GPUs (None: it has none, or NVML is missing)."""
        if not self.env.gpus or self.env.gpu_sample_seconds <= 0:
            return None
        sampler = GpuSampler(self.env.gpus, self.env.gpu_sample_seconds)
        return sampler if await asyncio.to_thread(sampler.start) else None

    # --- the attempt --------------------------------------------------------

    async def run(self) -> TaskState:
        try:
            return await self._guarded()
        finally:
            if self._context is not None:
                self._context.pool.shutdown(wait=False)

    async def _guarded(self) -> TaskState:
        try:
            return await self._attempt()
        except _Stopped:
            return await self._finish(S.CANCELED, self.cancel_reason)
        except taskfs.TaskPathError as exc:  # the task's own doing: a link, FIFO… at a path
            return await self._finish(S.EXECUTOR_ERROR, str(exc))
        except (StagingError, RuntimeUnavailable) as exc:
            return await self._finish(S.SYSTEM_ERROR, explain(exc, self.env.work_dir) or str(exc))
        except Exception as exc:
            full = explain(exc, self.env.work_dir)
            if full is None:
                log.exception("task %s: internal error", self.job.task_id)
            return await self._finish(
                S.SYSTEM_ERROR, full or f"internal error in toolship ({type(exc).__name__}: {exc})"
            )

    async def _attempt(self) -> TaskState:
        task = self.job.task
        if self.rt.phase in (None, "staging"):
            mounts = await self._stage()
        else:  # staged before the restart, and executors may have changed the files since
            mounts = _recorded_mounts(self.rt)
        if self.rt.phase == "run":
            sampler = await self._sample_gpus()
            try:
                failed_state = await self._executors(mounts)
            finally:
                if sampler is not None:
                    self._gpu_usage = await asyncio.to_thread(sampler.stop)
            if failed_state is not None and failed_state is not S.EXECUTOR_ERROR:
                return failed_state
            self.rt.phase = "outputs"
            self.rt.failed = failed_state is S.EXECUTOR_ERROR
            await self._report(wait=False)
        failed = self.rt.failed
        if not self.job.options.inputs_sha256:  # mounted inputs, hashed after the executors
            staged = read_manifest(self.layout)
            if staged:  # (most short tasks have none: no hop to a thread for them)
                self._record_hashes(await asyncio.to_thread(hash_mounted, staged))
        outputs: list[StagedFile] = []
        warnings: list[str] = []
        if task.outputs:
            outputs, warnings = await asyncio.to_thread(
                collect_outputs,
                task,
                self.layout,
                self.storage,
                self.stage_context,
                strict=not failed,
            )
        self.attempt.outputs = [
            OutputFileLog(url=o.url, path=o.path, size_bytes=str(o.size)) for o in outputs
        ]
        self._record_hashes(outputs, outputs=True)
        for w in warnings:
            self._system_log(w)
        await pause("uploaded", self.job)
        return await self._finish(S.EXECUTOR_ERROR if failed else S.COMPLETE)

    async def _stage(self) -> list[Mount]:
        """Stage the inputs into fresh directories; record the mounts and move to "run".

        The "staging" phase is recorded first: a restart in it (no executor has run yet)
        stages again from scratch; a restart after it never stages again.
        """
        task = self.job.task
        # Without inputs, preparing is a few mkdirs: done here, not in a thread, and the
        # INITIALIZING report shares its write with RUNNING and the launch record.
        staging = bool(task.inputs)
        self.rt.phase = "staging"
        if self.job.attempt is None:
            self.attempt.start_time = now_rfc3339()
            await self._report(S.INITIALIZING, wait=staging)
        prepare = functools.partial(
            prepare_inputs,
            task,
            self.layout,
            self.storage,
            self.stage_context,
            isolated=self.env.runtime.isolated,
            shared=SharedDirs(self.env.shared_dirs, self.env.writable_shared_dirs),
            copy_local=self.job.options.writable_inputs,
            owner=self.env.user,
        )
        mounts, staged, notes = await asyncio.to_thread(prepare) if staging else prepare()
        self.rt.staged_bytes = self.stage_context.progress.bytes
        self._record_hashes(staged)
        if self.job.options.inputs_sha256:  # a rerun: the bytes the original read, or no run
            self._record_hashes(
                await asyncio.to_thread(check_inputs, staged, self.job.options.inputs_sha256)
            )
        ranks = self.env.ranks or (_ONLY_RANK if self._one_node_asked() else None)
        if ranks is not None:
            mounts += ranks.files(self.layout.base)
        if not self.env.runtime.isolated:
            self._system_log_once(
                "ran with the process runtime: no container, no isolation from the host"
            )
        for note in notes:
            self._system_log_once(note)
        self.rt.phase = "run"
        self.rt.executor = 0
        self.rt.mounts = [(str(m.host), m.container, m.readonly) for m in mounts]
        if self.job.options.timeout:
            self.rt.deadline = time.time() + self.job.options.timeout
        await self._report(S.RUNNING, wait=False)  # made durable by the launch record
        await pause("staged", self.job)
        return mounts

    async def _executors(self, mounts: list[Mount]) -> TaskState | None:
        """Run executors from the recorded index on; a state if the attempt must end."""
        executors = self.job.task.executors
        while (index := self.rt.executor or 0) < len(executors):
            ex = executors[index]
            spec = self._exec_spec(index, mounts)
            stdout, stderr = self.layout.captures(index, ex.stdout, ex.stderr)
            exit_file = self.layout.exit_file(index)
            launched = find_launched(self.rt.pid, exit_file) if self.rt.launching == index else None
            if launched is None:
                stdin = open_stdin(self.layout, ex.stdin, mounts) if ex.stdin else None
                try:
                    launched = await self._launch(spec, index, stdin, stdout, stderr, exit_file)
                finally:
                    if stdin is not None:
                        os.close(stdin)
                self.rt.pid, self.rt.container = launched.pid, spec.name
                self.rt.exec_start = now_rfc3339()  # started now (the intent said "about to")
                await self._report(wait=False)  # a restart finds it by its exit file anyway
                await pause("started", self.job)
            image = asyncio.ensure_future(self.env.runtime.image(spec))
            code, why = await self._wait(launched, spec.name)
            await pause("exited", self.job)
            found = await image
            if found is None:  # pulled by the run itself: there now
                found = await self.env.runtime.image(spec)
            self._note_entrypoint(index, found.entrypoint if found is not None else [])
            self._record_image(index, ex.image, found)
            if spec.pod is not None:
                await close_pod(self.env.runtime, spec.pod)
            if self.env.ranks is not None:
                self._record_ranks(index, self.env.ranks.count)
                ends = [r.exit_code for r in self.rt.ranks or [] if r.executor == index]
                code = first_failure(code, ends)
            finish = functools.partial(
                finish_streams,
                self.layout,
                index,
                ex,
                self.env.ranks.count if self.env.ranks else 1,
                self.env.log_tail_bytes,
                self.env.user,
            )
            # Two bounded tail reads are quicker than a hop to a thread; copies to declared
            # stdout/stderr paths (any size) are not.
            copies = ex.stdout or ex.stderr
            out_tail, err_tail, problem = await asyncio.to_thread(finish) if copies else finish()
            self.attempt.logs.append(
                ExecutorLog(
                    start_time=self.rt.exec_start,
                    end_time=now_rfc3339(),
                    exit_code=-1 if code is None else code,
                    stdout=out_tail,
                    stderr=err_tail,
                )
            )
            self.rt.executor = index + 1
            self.rt.pid = self.rt.container = self.rt.launching = None
            ended = await self._outcome(index, ex, code, why, err_tail, problem)
            if ended is not None:
                return ended
            await self._report(wait=False)
        return None

    async def _outcome(
        self,
        index: int,
        ex: Executor,
        code: int | None,
        why: str | None,
        err_tail: str,
        problem: str | None,
    ) -> TaskState | None:
        """How executor ``index`` ended: a state if the attempt must end, None to go on."""
        if why == "canceled":
            raise _Stopped
        if why == "timeout":
            message = timed_out(index, self.job.options.timeout or 0)
            return await self._finish(S.EXECUTOR_ERROR, message)
        if code is None:
            return await self._finish(
                S.SYSTEM_ERROR,
                f"executor {index} was running when the server stopped, and its process "
                "is gone without an exit code; its result is unknown",
            )
        failure = self.env.runtime.start_failure(code, err_tail, ex.image)
        if failure is not None:
            return await self._finish(S.SYSTEM_ERROR, failure)
        if problem is not None:
            return await self._finish(S.EXECUTOR_ERROR, problem)
        if code != 0:
            if code == 137 and self.job.options.memory_limited:
                limit = format_bytes(int(self.job.options.memory_gb * 1024**3))
                self._system_log(
                    f"executor {index} was killed (SIGKILL, exit 137): out of memory — "
                    f"it is limited to {limit}; ask for more with --memory / resources.ram_gb"
                )
            if not ex.ignore_error:
                await self._report(wait=False)
                return S.EXECUTOR_ERROR
        return None

    async def _launch(
        self,
        spec: ExecSpec,
        index: int,
        stdin: int | None,
        stdout: Path,
        stderr: Path,
        exit_file: Path,
    ) -> Launched:
        # Record the intent first: a restart in between must find, not re-run, it.
        self.rt.launching, self.rt.exec_start = index, now_rfc3339()
        await self._report()
        ranks = self.env.ranks
        if spec.pod is not None:
            await open_pod(self.env.runtime, spec)
        return await launch(
            self.env.runtime,
            spec,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            exit_file=exit_file,
            keeper=self.env.keeper,
            wrap=functools.partial(
                ranks.wrap,
                name=spec.name,
                stdout=stdout,
                stderr=stderr,
                exits=self.layout.rank_exits(index),
            )
            if ranks is not None
            else None,
        )

    async def _wait(self, launched: Launched, name: str) -> tuple[int | None, str | None]:
        """Wait for the executor; stop it on cancel or deadline.  (exit code, why stopped).

        One future is woken by whichever comes first — the exit (straight from the
        executor's pidfd callback), cancel() or the deadline — so an ending executor
        costs one turn of the event loop, not four through tasks and asyncio.wait.
        """
        loop = asyncio.get_running_loop()
        waking: asyncio.Future[str] = loop.create_future()
        ended: asyncio.Future[int | None] = loop.create_future()

        def exited(code: int | None) -> None:
            _settle(ended, code)
            _settle(waking, "exit")

        launched.on_exit(exited)
        self._waking = waking
        if self.cancelled.is_set():
            _settle(waking, "canceled")
        deadline = self.rt.deadline
        timer = (
            None
            if deadline is None
            else loop.call_later(max(0.0, deadline - time.time()), _settle, waking, "timeout")
        )
        try:
            why = await waking
        finally:
            self._waking = None
            if timer is not None:
                timer.cancel()
        if why == "exit":
            code: int | None = ended.result()
            if code is None or code >= 0:
                return code, None
            # The wrapper itself was killed: a signal to the whole job (scancel sends SIGTERM
            # to every process of it).  Let a cancel that came with it land, and make sure
            # the container, which is not the wrapper's child, goes too.
            await asyncio.sleep(0.2)
            await self._stop(launched, name)
            return code, "canceled" if self.cancelled.is_set() else None
        await self._stop(launched, name)
        code = None
        with contextlib.suppress(TimeoutError):
            code = await asyncio.wait_for(ended, 5)
        return code, why

    # --- helpers ------------------------------------------------------------

    def _record_ranks(self, index: int, count: int) -> None:
        """Keep how each rank of executor ``index`` ended (once, also when resumed)."""
        ended = read_rank_exits(self.layout.rank_exits(index), index, count)
        self.rt.ranks = [r for r in self.rt.ranks or [] if r.executor != index] + ended

    def _one_node_asked(self) -> bool:
        """``nodes = 1`` asked for explicitly (a sweep over nodes, a command that reads
        $WORLD_SIZE): the task gets the ranks' variables as the only rank."""
        params = self.job.task.resources.backend_parameters if self.job.task.resources else None
        return self.env.ranks is None and node_count(params) is not None

    def _note_entrypoint(self, index: int, entrypoint: list[str]) -> None:
        """Say what ran when the image's ENTRYPOINT ran before the command."""
        if entrypoint:
            argv = shlex.join([*entrypoint, *self.job.task.executors[index].command])
            self._system_log_once(
                f"executor {index} ran the image's ENTRYPOINT {json.dumps(entrypoint)} with "
                f"the command as its arguments: {argv} (backend_parameters.entrypoint=command "
                "runs the command alone)"
            )

    async def _stop(self, launched: Launched, name: str) -> None:
        """Stop the executor, every rank of it (their containers have their own names)."""
        for rank in range(1, self.env.ranks.count if self.env.ranks else 1):
            for argv in self.env.runtime.stop_commands(rank_name(name, rank), 0):
                await run_quietly(argv)
        await stop(self.env.runtime, launched, name, self.env.stop_grace_seconds)

    def _exec_spec(self, index: int, mounts: list[Mount]) -> ExecSpec:
        ex = self.job.task.executors[index]
        opts = self.job.options
        # As many threads as the task has cores for OpenMP and BLAS libraries (numpy,
        # scikit-learn, torch), which otherwise start one per core of the host and are
        # throttled by the task's CPU limit; a task's own values win.
        threads = str(max(1, math.floor(opts.cpus)))
        env = {
            **dict.fromkeys(THREAD_VARIABLES, threads),
            **(ex.env or {}),
            "TOOLSHIP_TASK_ID": self.job.task_id,
            "TOOLSHIP_ATTEMPT": str(self.job.attempt_number),
        }
        ranks = self.env.ranks
        if ranks is not None:
            env.update(ranks.environment())
        elif self._one_node_asked():
            node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()  # as ranks say
            env.update(_ONLY_RANK.environment())
            env.update(dict.fromkeys(RANK_VARIABLES, "0"), TOOLSHIP_NODE_NAME=node)
        name = f"toolship-{self.job.task_id}-{self.job.attempt_number}-{index}"
        return ExecSpec(
            name=name,
            task_id=self.job.task_id,
            image=ex.image,
            command=ranks.command(tuple(ex.command)) if ranks else tuple(ex.command),
            workdir=ex.workdir,
            env=env,
            mounts=tuple(mounts),
            root=self.layout.root,
            cpus=float(opts.cpus),
            memory_bytes=int(opts.memory_gb * 1024**3) if opts.memory_limited else None,
            network=opts.network,
            pids_limit=self.env.pids_limit,
            user=self.env.user,
            idmap=self.env.idmap,
            keep_entrypoint=opts.keep_entrypoint,
            pull=pullable(ex.image, self.env.pull_from),
            interactive=ex.stdin is not None,
            pod=pod_name(name) if ranks is not None and not ranks.host_network else None,
            host_network=ranks is not None and ranks.host_network,
            env_passthrough=RANK_VARIABLES if ranks is not None else (),
            cgroup_parent=(
                cgroup_name(self.job.task_id, self.job.attempt_number)
                if self.env.accounting
                else None
            ),
            labels=dict(self.env.labels),
            gpus=self.env.gpus,
        )


def _recorded_mounts(runtime: RuntimeRecord) -> list[Mount]:
    """The mounts staging recorded: a resumed attempt uses them and never stages again."""
    recorded = runtime.mounts
    if recorded is None:
        raise StagingError(
            "this attempt was staged by an older toolship, which did not record its mounts; "
            "it cannot continue after the restart without staging again over the executors' "
            "files: submit the task again"
        )
    return [Mount(host=Path(host), container=c, readonly=ro) for host, c, ro in recorded]


def _settle(future: asyncio.Future[Any] | None, value: Any) -> None:
    if future is not None and not future.done():
        future.set_result(value)


def _seconds(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    return max(0.0, (parse_rfc3339(end) - parse_rfc3339(start)).total_seconds())


def timed_out(index: int, seconds: float) -> str:
    """The system log of an executor stopped at the task's timeout."""
    return f"executor {index} timed out after {format_duration(seconds)} and was killed"
