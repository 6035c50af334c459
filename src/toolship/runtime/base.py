"""The runtime plug point: build a command line for one executor, and stop it.

Starting, waiting and recovering after a server restart are the same for every
runtime (see :mod:`toolship.runtime.launch`), so a runtime only says *what* to
run and *how to stop it*.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from toolship.errors import ConfigError
from toolship.runtime.gpus import Gpu

__all__ = [
    "ExecSpec",
    "IdMap",
    "Mount",
    "RunImage",
    "Runtime",
    "get_runtime",
    "known_runtimes",
    "missing_image_message",
    "registry_host",
    "within",
]


@dataclass(frozen=True, slots=True)
class Mount:
    host: Path
    container: str
    readonly: bool


@dataclass(frozen=True, slots=True)
class IdMap:
    """A user namespace for a container: its root is ``uid:gid`` on the host (the task's
    user), and its users and groups 1 … count-1 are the host ids from ``first`` on.

    Root in the container then has its usual file capabilities (chown, reading and
    writing any file it owns), but only over files whose owners are mapped: on the host
    it is an unprivileged user, and files of any other host user stay out of its reach.
    """

    uid: int
    gid: int
    first: int
    count: int

    @classmethod
    def for_task(cls, user: tuple[int, int], subids: tuple[int, int] | None) -> IdMap | None:
        """The namespace a root server gives tasks run as ``user``; None: run them as ``user``.

        None without subordinate ids (``local.task_subids = ""``), when not root (rootless
        podman has a namespace of its own), and for ``task_user = "0:0"`` (the operator's
        explicit choice of the host's root, which no mapping can make safer).
        """
        if subids is None or user[0] == 0 or os.geteuid() != 0:
            return None
        return cls(user[0], user[1], subids[0], subids[1])


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
    # Containers only: run as root of a user namespace whose root is ``user`` on the host.
    idmap: IdMap | None = None
    # Containers: the image's ENTRYPOINT runs with ``command`` as its arguments (as
    # ``podman run IMAGE COMMAND``); False: ``command[0]`` replaces it.
    keep_entrypoint: bool = True
    # Pull the image when this host lacks it (an image pinned by digest in a registry the
    # operator trusts: the bytes are the digest's wherever they come from).  Otherwise
    # only what this host has runs.
    pull: bool = False
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
    # The GPUs the executor gets (runtime.gpus); None: the server knows no GPUs, so the
    # environment is left alone; (): it must see none.
    gpus: tuple[Gpu, ...] | None = None


@dataclass(frozen=True, slots=True)
class RunImage:
    """An executor's image as the runtime found it."""

    # The image's ENTRYPOINT that runs before the command ([]: the command alone).
    entrypoint: list[str]
    digest: str  # the manifest's sha256:… ("" when the runtime has none)
    image_id: str  # the config's sha256:… (podman's image id)


class Runtime(Protocol):
    name: str
    # False for the process runtime: `show` tells the user the task ran unisolated.
    isolated: bool

    def command(self, spec: ExecSpec) -> list[str]:
        """The argv that runs the executor in the foreground and exits with its code."""
        ...

    def run_as(self, spec: ExecSpec) -> tuple[int, int] | None:
        """The uid:gid the launched command runs as (None: the server's own)."""
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

    async def image(self, spec: ExecSpec) -> RunImage | None:
        """What the executor's image is: its ENTRYPOINT, manifest digest and id.

        None when the runtime runs no image (process) or cannot say (not pulled yet).
        """
        ...

    def start_failure(self, exit_code: int, stderr_tail: str, image: str) -> str | None:
        """Why the executor never started (a missing image, a runtime fault), with the fix.

        None: the exit code is the executor's own.
        """
        ...


def registry_host(reference: str) -> str | None:
    """The registry an image reference names (``127.0.0.1:5055``, ``localhost``), or None
    for a short name (``busybox``, ``team/tool``: Docker Hub's, as podman reads them)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def within(repository: str, registries: Sequence[str]) -> bool:
    """Whether ``repository`` is one of ``registries`` (hosts, or host/path prefixes)."""
    return any(
        repository == r.rstrip("/") or repository.startswith(r.rstrip("/") + "/")
        for r in registries
    )


def missing_image_message(image: str, stderr_tail: str) -> str:
    detail = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else ""
    name, _, digest = image.partition("@")
    if digest and registry_host(name) not in (None, "localhost"):
        return (
            f"image {image!r} is not on this host ({detail}), and a host pulls images pinned "
            "by digest only from images.approved_registries and images.registry: the "
            f"operator may add its registry there, or pull it here (`podman pull {image}`)"
        )
    return (
        f"image {image!r} is not available locally and could not be pulled ({detail}). "
        f"Build it with `podman build -t {image} DIR`, load it with `podman load -i FILE`, "
        f"or import a root file system with `tar -C ROOTFS -c . | podman import - {image}`"
    )


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
