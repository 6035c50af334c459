"""podman and docker: one command builder, two binaries.

Defaults are the safe ones: no network, read-only root file system with a
tmpfs ``/tmp``, every capability dropped, no-new-privileges, a pids limit,
the task's uid (``local.task_user`` on a root server), ``--pull never`` (no
registry is assumed reachable), and labels that tie the container to its task.
"""

from __future__ import annotations

import os
from pathlib import Path

from toolship.errors import RuntimeUnavailable
from toolship.runtime.base import ExecSpec

__all__ = ["ContainerRuntime"]

LABEL_TASK = "io.toolship.task"


def _rootless() -> bool:
    return os.geteuid() != 0


class ContainerRuntime:
    isolated = True

    def __init__(self, binary: str, *, rootless: bool | None = None) -> None:
        self.name = binary
        self.binary = binary
        self.rootless = _rootless() if rootless is None else rootless

    def command(self, spec: ExecSpec) -> list[str]:
        argv = [self.binary, "run", "--rm", "--name", spec.name]
        argv += _labels(spec)
        argv += ["--pull", "never"]
        if spec.pod is not None:
            argv += ["--pod", spec.pod]  # the pod's namespace: its network, its user ids
        else:
            argv += ["--network", _network(spec)]
        if self.binary == "podman":
            # Output goes straight to our files; a second copy in podman's log is waste.
            argv += ["--log-driver", "none"]
        argv += self._confinement(spec)
        argv += _resources(spec)
        if spec.interactive:
            argv.append("--interactive")
        if spec.workdir:
            argv += ["--workdir", spec.workdir]
        argv += _environment(spec)
        for m in spec.mounts:
            argv += ["--volume", f"{m.host}:{m.container}:{'ro' if m.readonly else 'rw'}"]
        # TES: `command` is the whole argv, so its first word replaces the image's entrypoint.
        argv += ["--entrypoint", spec.command[0], spec.image, *spec.command[1:]]
        return argv

    def _confinement(self, spec: ExecSpec) -> list[str]:
        """Read-only root, a bounded /tmp, no capabilities, no new privileges, the task's uid."""
        argv = ["--read-only"]
        if not any(m.container == "/tmp" for m in spec.mounts):
            argv += ["--tmpfs", f"/tmp:rw,exec,mode=1777,size={spec.memory_bytes or 1024**3}"]
        argv += ["--cap-drop", "all", "--security-opt", "no-new-privileges"]
        argv += ["--pids-limit", str(spec.pids_limit)]
        if self.rootless and self.binary == "podman" and spec.pod is None:
            argv += ["--userns", "keep-id"]
        argv += ["--user", f"{spec.user[0]}:{spec.user[1]}"]
        return argv

    def environment(self, spec: ExecSpec) -> dict[str, str] | None:
        return None

    def cwd(self, spec: ExecSpec) -> Path | None:
        return None

    def stop_commands(self, name: str, grace_seconds: int) -> list[list[str]]:
        rm = [self.binary, "rm", "--force", "--time", str(grace_seconds), name]
        if self.binary == "podman":
            rm.insert(3, "--ignore")
        return [rm]

    def pod_commands(self, spec: ExecSpec) -> list[list[str]]:
        if self.binary != "podman":
            raise RuntimeUnavailable(
                f"{self.binary} has no pods, which give the ranks of a multi-node task a "
                "network of their own on one machine; run it with --runtime podman"
            )
        argv = [self.binary, "pod", "create", "--replace", "--name", str(spec.pod)]
        argv += _labels(spec)
        argv += ["--network", _network(spec)]
        if self.rootless:
            argv += ["--userns", "keep-id"]
        return [argv]

    def remove_pod_commands(self, pod: str) -> list[list[str]]:
        return [[self.binary, "pod", "rm", "--force", "--ignore", pod]]

    def missing_image(self, exit_code: int, stderr_tail: str) -> bool:
        if exit_code != 125:
            return False
        text = stderr_tail.lower()
        return any(
            marker in text
            for marker in ("image not known", "no such image", "unable to find image", "pull")
        )


def _labels(spec: ExecSpec) -> list[str]:
    argv = ["--label", f"{LABEL_TASK}={spec.task_id}"]
    for key, value in sorted(spec.labels.items()):
        argv += ["--label", f"{key}={value}"]
    return argv


def _resources(spec: ExecSpec) -> list[str]:
    argv: list[str] = []
    if spec.cpus is not None:
        argv += ["--cpus", _num(spec.cpus)]
    if spec.memory_bytes is not None:
        argv += ["--memory", f"{spec.memory_bytes}b", "--memory-swap", f"{spec.memory_bytes}b"]
    if spec.cgroup_parent:
        argv += ["--cgroup-parent", spec.cgroup_parent]
    return argv


def _environment(spec: ExecSpec) -> list[str]:
    argv: list[str] = []
    for key, value in sorted(spec.env.items()):
        argv += ["--env", f"{key}={value}"]
    for key in spec.env_passthrough:
        argv += ["--env", key]  # the value comes from the launching environment
    return argv


def _network(spec: ExecSpec) -> str:
    return "host" if spec.host_network else "bridge" if spec.network else "none"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
