"""The runtime plug point: build a command line for one executor, and stop it.

Starting, waiting and recovering after a server restart are the same for every
runtime (see :mod:`toolship.runtime.launch`), so a runtime only says *what* to
run and *how to stop it*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from toolship.errors import ConfigError

__all__ = ["ExecSpec", "Mount", "Runtime", "get_runtime", "known_runtimes"]


@dataclass(frozen=True, slots=True)
class Mount:
    host: Path
    container: str
    readonly: bool


@dataclass(frozen=True, slots=True)
class ExecSpec:
    """Everything needed to run one executor of one attempt."""

    name: str  # unique container name, also used to find it again
    task_id: str
    image: str
    command: tuple[str, ...]
    workdir: str | None
    env: dict[str, str]
    mounts: tuple[Mount, ...]
    # Host directory standing for the container's "/" (the process runtime runs in it).
    root: Path
    cpus: float | None = None
    memory_bytes: int | None = None
    network: bool = False
    pids_limit: int = 4096
    user: tuple[int, int] = (0, 0)
    interactive: bool = False  # the executor reads stdin
    # Multi-node tasks.  Ranks on one machine share the network namespace of ``pod``
    # (private to them; it reaches outside only with ``network``).  Ranks that span hosts
    # (Slurm) meet over the hosts' network instead (``host_network``, an operator's
    # choice).  Each rank's own values (TOOLSHIP_NODE_RANK, RANK, …) come from the
    # launching environment.
    pod: str | None = None
    host_network: bool = False
    env_passthrough: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str | None = None  # for usage accounting (see runtime.usage)


class Runtime(Protocol):
    name: str
    # False for the process runtime: `show` tells the user the task ran unisolated.
    isolated: bool

    def command(self, spec: ExecSpec) -> list[str]:
        """The argv that runs the executor in the foreground and exits with its code."""
        ...

    def environment(self, spec: ExecSpec) -> dict[str, str] | None:
        """Environment of the launched command (None: inherit the server's)."""
        ...

    def cwd(self, spec: ExecSpec) -> Path | None:
        """Host working directory for the launched command (None: inherit)."""
        ...

    def stop_commands(self, name: str, grace_seconds: int) -> list[list[str]]:
        """Commands that stop and remove the executor named ``name`` (may be empty)."""
        ...

    def pod_commands(self, spec: ExecSpec) -> list[list[str]]:
        """Commands that make ``spec.pod``, the network namespace its ranks share (may be empty).

        A pod of the same name left by an earlier try is replaced.
        """
        ...

    def remove_pod_commands(self, pod: str) -> list[list[str]]:
        """Commands that remove the pod ``pod`` with anything still running in it."""
        ...

    def missing_image(self, exit_code: int, stderr_tail: str) -> bool:
        """True when the run failed because the image is not available locally."""
        ...


def known_runtimes() -> tuple[str, ...]:
    return ("podman", "docker", "process")


def get_runtime(name: str) -> Runtime:
    from toolship.runtime.container import ContainerRuntime
    from toolship.runtime.process import ProcessRuntime

    if name in ("podman", "docker"):
        return ContainerRuntime(name)
    if name == "process":
        return ProcessRuntime()
    raise ConfigError(f"unknown runtime {name!r}; known runtimes: {', '.join(known_runtimes())}")
