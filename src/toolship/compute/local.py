"""The local executor: runs attempts on this machine, never oversubscribing it.

It accounts the cores, memory and GPUs of running attempts against what the
machine (or the configuration) offers, and refuses at creation a task that
could never fit.  GPUs are devices, not a number: each attempt is handed
specific ones (see :mod:`toolship.compute.devices`), and its executors see
exactly those.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from toolship.compute.base import Capacity, RemoteAttempt, Request
from toolship.compute.devices import GpuPool
from toolship.config import LocalSettings, Settings
from toolship.errors import ResourcesUnavailable
from toolship.models import TaskLog
from toolship.options import SLURM_PARAMETERS, TaskOptions
from toolship.records import Job, Reporter, RuntimeRecord
from toolship.runtime import IdMap, Runtime, get_runtime
from toolship.runtime.gpus import Gpu, discover
from toolship.runtime.keeper import Keeper
from toolship.runtime.usage import accounting_available
from toolship.states import TaskState, is_final
from toolship.storage import StorageRegistry
from toolship.storage.local import release_mounts
from toolship.worker.ranks import local_ranks
from toolship.worker.worker import Worker, WorkerEnv

__all__ = ["LocalBackend", "gpu_inventory"]

log = logging.getLogger(__name__)


def gpu_inventory(local: LocalSettings) -> tuple[list[Gpu], list[str]]:
    """The GPUs tasks get here, and what the operator should hear about them."""
    if local.gpus == 0:
        return [], ["GPUs: none (local.gpus = 0)"]
    if local.gpu_devices:
        gpus = [Gpu(d.index, d.uuid, d.name, d.memory_mib) for d in local.gpu_devices]
        how = "listed in local.gpu_devices"
    else:
        gpus, found_by = discover()
        how = f"found through {found_by}" if found_by != "none" else "found none"
    notes: list[str] = []
    if local.gpus is not None and len(gpus) > local.gpus:
        gpus = gpus[: local.gpus]
        how += f", the first {local.gpus} used (local.gpus)"
    elif local.gpus is not None and len(gpus) < local.gpus:
        taken = {g.index for g in gpus}
        extra = [i for i in range(local.gpus + len(gpus)) if i not in taken]
        extra = extra[: local.gpus - len(gpus)]
        gpus = [*gpus, *(Gpu(i) for i in extra)]
        notes.append(
            f"local.gpus = {local.gpus} but {len(taken)} device(s) {how}: devices "
            f"{', '.join(map(str, extra))} are counted without being found; tasks get "
            "their index in CUDA_VISIBLE_DEVICES and no device node. List the devices in "
            "local.gpu_devices (index, uuid), or lower local.gpus"
        )
    share = f", each shared by up to {local.gpu_share} tasks" if local.gpu_share > 1 else ""
    listing = "; ".join(g.describe() for g in gpus)
    notes.insert(0, f"GPUs: {len(gpus)} ({how}){share}{': ' if gpus else ''}{listing}")
    return gpus, notes


class LocalBackend:
    name = "local"
    worker_secret = b""  # its workers run in this process
    host_bound = True  # its containers run on this host

    def __init__(self, settings: Settings, storage: StorageRegistry) -> None:
        self.all_settings = settings
        self.settings = local = settings.local
        self.storage = storage
        self.work_dir = settings.work_dir
        self.gpus, notes = gpu_inventory(local)
        for note in notes:
            (log.warning if note.startswith("local.gpus") else log.info)("%s", note)
        slots = len(self.gpus) * local.gpu_share
        pool = GpuPool(self.gpus, local.gpu_share) if self.gpus else None
        self.total = Capacity(float(local.cpus), local.memory_gb, slots)
        self.free = Capacity(float(local.cpus), local.memory_gb, slots, pool)
        self._runtimes: dict[str, Runtime] = {}
        self.keeper = Keeper()  # starts every executor of this server (on first use)

    async def open(self) -> None:
        return None

    async def adopting(self) -> None:
        return None  # an attempt is found on this host by its runtime record alone

    async def close(self) -> None:
        self.keeper.close()

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
        if gpus > len(self.gpus):
            problems.append(f"{gpus} GPUs (this machine offers {len(self.gpus)})")
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
            ranks = local_ranks(
                job.options.nodes, mpi=job.options.mpi_launcher, slots=job.options.cpus
            )
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
            gpus=self._granted(job),
            gpu_sample_seconds=local.gpu_sample_seconds,
            keeper=self.keeper,
        )
        attempt_dir = self.work_dir / job.task_id / str(job.attempt_number)
        attempt_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the task's own
        return Worker(job, env, _Releasing(reporter, attempt_dir))

    def _granted(self, job: Job) -> tuple[Gpu, ...] | None:
        """The devices the attempt's executors get (None: this machine has no GPUs).

        A fresh attempt was handed its devices when the scheduler took its capacity,
        and records them; a resumed one (after a restart) reclaims what it recorded.
        """
        pool = self.free.devices
        if pool is None:
            return None
        if not job.options.gpus:
            return ()
        held = pool.held(job.task_id)
        if held:
            job.runtime = job.runtime.model_copy(update={"gpus": [g.index for g in held]})
            return held
        recorded = job.runtime.gpus or []
        missing = pool.reserve(job.task_id, recorded)
        if missing:
            log.warning(
                "task %s: GPUs %s it ran on are no longer in the inventory",
                job.task_id,
                ", ".join(map(str, missing)),
            )
        return tuple(g for g in self.gpus if g.index in recorded)


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
        if state is not None and is_final(state) and (self.attempt_dir / "mounts").is_dir():
            await asyncio.to_thread(release_mounts, self.attempt_dir)
        return await self.reporter.update(state, attempt, runtime, wait=wait)
