"""The local executor: runs attempts on this machine, never oversubscribing it.

It accounts the cores, memory and GPUs of running attempts against what the
machine (or the configuration) offers, and refuses at creation a task that
could never fit.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from toolship.compute.base import Capacity, RemoteAttempt, Request
from toolship.config import Settings
from toolship.errors import ResourcesUnavailable
from toolship.models import TaskLog
from toolship.options import SLURM_PARAMETERS, TaskOptions
from toolship.records import Job, Reporter, RuntimeRecord
from toolship.runtime import IdMap, Runtime, get_runtime
from toolship.runtime.usage import accounting_available
from toolship.states import TaskState, is_final
from toolship.storage import StorageRegistry
from toolship.storage.local import release_mounts
from toolship.worker.ranks import local_ranks
from toolship.worker.worker import Worker, WorkerEnv

__all__ = ["LocalBackend"]


class LocalBackend:
    name = "local"
    worker_secret = b""  # its workers run in this process

    def __init__(self, settings: Settings, storage: StorageRegistry) -> None:
        self.all_settings = settings
        self.settings = local = settings.local
        self.storage = storage
        self.work_dir = settings.work_dir
        self.total = Capacity(float(local.cpus), local.memory_gb, local.gpus)
        self.free = Capacity(float(local.cpus), local.memory_gb, local.gpus)
        self._runtimes: dict[str, Runtime] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def in_flight(self, runtime: RuntimeRecord) -> bool:
        return False  # a local attempt leaves QUEUED before anything runs

    def remote_attempt(self, task_id: str) -> RemoteAttempt | None:
        return None

    def runtime(self, name: str) -> Runtime:
        rt = self._runtimes.get(name)
        if rt is None:
            rt = self._runtimes[name] = get_runtime(name)
        return rt

    def check(self, options: TaskOptions) -> None:
        slurm_only = [k for k in SLURM_PARAMETERS if k in options.parameters]
        if slurm_only:
            raise ResourcesUnavailable(
                f"backend parameter(s) {', '.join(slurm_only)} need a Slurm backend; this "
                "server runs tasks on its own machine. Leave them out, or use a server "
                "started with `toolship serve --backend slurm`"
            )
        problems = []
        # Every rank of a multi-node task runs here at once.
        cpus, memory_gb, gpus = (
            options.cpus * options.nodes,
            options.memory_gb * options.nodes,
            options.gpus * options.nodes,
        )
        if cpus > self.total.cpus:
            problems.append(f"{cpus} CPU cores (this machine offers {self.total.cpus:g})")
        if memory_gb > self.total.memory_gb:
            problems.append(
                f"{memory_gb:g} GiB of memory (this machine offers {self.total.memory_gb:g} GiB)"
            )
        if gpus > self.total.gpus:
            problems.append(f"{gpus} GPUs (this machine offers {self.total.gpus})")
        if options.disk_gb is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            free_gb = shutil.disk_usage(self.work_dir).free / 1024**3
            if options.disk_gb > free_gb:
                problems.append(
                    f"{options.disk_gb:g} GiB of disk ({free_gb:.1f} GiB free in {self.work_dir})"
                )
        if problems:
            raise ResourcesUnavailable(
                "the task asks for more than the local executor has: "
                + "; ".join(problems)
                + ". Ask for less (--cpu/--memory/--disk), or run it on a bigger backend"
            )
        if options.nodes > 1 and options.runtime == "docker":
            raise ResourcesUnavailable(
                "nodes > 1 on this server runs the ranks in a podman pod, a network of their "
                "own; docker has no pods: leave out --runtime docker (or use podman)"
            )
        if options.runtime != "process" and shutil.which(options.runtime) is None:
            raise ResourcesUnavailable(
                f"runtime {options.runtime!r} is not installed on this server; install it "
                "(see scripts/setup-host.sh) or choose another with --runtime"
            )

    def request(self, task_id: str, options: TaskOptions) -> Request:
        return Request.on_this_machine(task_id, options)

    def start(self, job: Job, reporter: Reporter) -> Worker:
        """The worker runs in this process; its containers survive a server restart."""
        local = self.settings
        ranks = None
        if job.options.nodes > 1:
            ranks = local_ranks(job.options.nodes)
        env = WorkerEnv(
            work_dir=self.work_dir,
            storage=self.storage,
            runtime=self.runtime(job.options.runtime),
            log_tail_bytes=local.log_tail_bytes,
            stop_grace_seconds=local.stop_grace_seconds,
            pids_limit=local.pids_limit,
            shared_dirs=tuple(local.shared_dirs),
            writable_shared_dirs=tuple(local.writable_shared_dirs),
            transfers=self.all_settings.storage.max_concurrency,
            transfer_attempts=self.all_settings.storage.attempts,
            accounting=local.accounting and accounting_available(job.options.runtime),
            ranks=ranks,
            user=self.all_settings.task_user,
            idmap=IdMap.for_task(self.all_settings.task_user, self.all_settings.task_subids),
            pull_from=tuple(self.all_settings.images.pull_from),
        )
        attempt_dir = self.work_dir / job.task_id / str(job.attempt_number)
        attempt_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the task's own
        return Worker(job, env, _Releasing(reporter, attempt_dir))


class _Releasing:
    """Unmounts the attempt's pinned inputs before its final state is written.

    In that order, a restart in between resumes the attempt (which ends, and releases,
    again) instead of leaving a mount behind a finished task.
    """

    def __init__(self, reporter: Reporter, attempt_dir: Path) -> None:
        self.reporter = reporter
        self.attempt_dir = attempt_dir

    async def update(
        self,
        state: TaskState | None,
        attempt: TaskLog,
        runtime: RuntimeRecord,
        *,
        wait: bool = True,
    ) -> bool:
        if state is not None and is_final(state):
            await asyncio.to_thread(release_mounts, self.attempt_dir)
        return await self.reporter.update(state, attempt, runtime, wait=wait)
