"""The local executor: runs attempts on this machine, never oversubscribing it.

It accounts the cores, memory and GPUs of running attempts against what the
machine (or the configuration) offers, and refuses at creation a task that
could never fit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from toolship.config import LocalSettings
from toolship.engine.options import TaskOptions
from toolship.engine.scheduler import Capacity, Request
from toolship.errors import ResourcesUnavailable
from toolship.runtime import Runtime, get_runtime

__all__ = ["LocalBackend"]


class LocalBackend:
    name = "local"

    def __init__(self, settings: LocalSettings, work_dir: Path) -> None:
        self.settings = settings
        self.work_dir = work_dir
        self.total = Capacity(float(settings.cpus), settings.memory_gb, settings.gpus)
        self.free = Capacity(float(settings.cpus), settings.memory_gb, settings.gpus)
        self._runtimes: dict[str, Runtime] = {}

    def runtime(self, name: str) -> Runtime:
        rt = self._runtimes.get(name)
        if rt is None:
            rt = self._runtimes[name] = get_runtime(name)
        return rt

    def check(self, options: TaskOptions) -> None:
        problems = []
        if options.cpus > self.total.cpus:
            problems.append(f"{options.cpus} CPU cores (this machine offers {self.total.cpus:g})")
        if options.memory_gb > self.total.memory_gb:
            problems.append(
                f"{options.memory_gb:g} GiB of memory (this machine offers "
                f"{self.total.memory_gb:g} GiB)"
            )
        if options.gpus > self.total.gpus:
            problems.append(f"{options.gpus} GPUs (this machine offers {self.total.gpus})")
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
        if options.runtime != "process" and shutil.which(options.runtime) is None:
            raise ResourcesUnavailable(
                f"runtime {options.runtime!r} is not installed on this server; install it "
                "(see scripts/setup-host.sh) or choose another with --runtime"
            )

    def request(self, task_id: str, options: TaskOptions) -> Request:
        return Request(
            task_id=task_id,
            cpus=options.cpus,
            memory_gb=options.memory_gb,
            gpus=options.gpus,
            priority=options.priority,
        )
