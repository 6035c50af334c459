"""Run the command directly on the host, without isolation.

Only used when a task or the configuration asks for it; ``show`` reports it.
There is no mount namespace, so container paths are not where the command
looks: it runs in the host directory that stands for its workdir, and
``TOOLSHIP_ROOT`` names the host directory that stands for ``/``.  A server
running as root runs the command as ``local.task_user``, which cannot enter the
server's home (0700): the command reaches its files relative to its workdir.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from toolship.runtime.base import ExecSpec, RunImage
from toolship.runtime.gpus import visible_env

__all__ = ["ProcessRuntime"]

# The only server variables a host process inherits; the rest (credentials!) stay behind.
_PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER")


class ProcessRuntime:
    name = "process"
    isolated = False

    def command(self, spec: ExecSpec) -> list[str]:
        return list(spec.command)

    def run_as(self, spec: ExecSpec) -> tuple[int, int] | None:
        # A root server drops to the task's user (local.task_user) for the command itself.
        if os.geteuid() != 0 or spec.user == (0, 0):
            return None
        return spec.user

    @functools.cached_property
    def _inherited(self) -> dict[str, str]:
        """What every command inherits, read once (``os.environ`` decodes each variable
        on every read, and a server starts many processes)."""
        env = {k: os.environ[k] for k in _PASSED if k in os.environ}
        # Inside a Slurm job, `srun` (multi-node tasks) needs the job's own variables.
        env.update({k: v for k, v in os.environ.items() if k.startswith("SLURM_")})
        return env

    def environment(self, spec: ExecSpec) -> dict[str, str] | None:
        env = dict(self._inherited)
        env["TOOLSHIP_ROOT"] = str(spec.root)
        env.update(spec.env)
        # The host's devices, named by UUID or host index: the task's own and no other.
        env.update(visible_env(spec.gpus))
        return env

    def cwd(self, spec: ExecSpec) -> Path | None:
        if spec.workdir:
            return spec.root / spec.workdir.lstrip("/")
        return spec.root

    def stop_commands(self, name: str, grace_seconds: int) -> list[list[str]]:
        return []

    def pod_commands(self, spec: ExecSpec) -> list[list[str]]:
        return []  # host processes: the ranks share the host's network, like everything else

    def remove_pod_commands(self, pod: str) -> list[list[str]]:
        return []

    async def image(self, spec: ExecSpec) -> RunImage | None:
        return None

    def start_failure(self, exit_code: int, stderr_tail: str, image: str) -> str | None:
        return None
