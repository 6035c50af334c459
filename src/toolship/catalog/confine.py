"""What holds a service build in: its RUN steps run as a task runs, within limits and a deadline.

A build runs a Containerfile a client uploaded, so its ``RUN`` steps are as untrusted as
a task.  On a root server they run as root of a user namespace with the mapping tasks
get (``local.task_user`` is their root on the host, ``local.task_subids`` their other
users), with the capabilities a task's root keeps, no new privileges, and the memory,
CPU and pids limits and the deadline of the ``images`` settings.

Three things ``podman build`` (4.3) cannot do by itself are done by a small wrapper
around the OCI runtime, written for each build (``podman --runtime WRAPPER build``):

- buildah leaves the top directory of a RUN step's file system owned by the host's
  root rather than by the namespace's, so no RUN step could create anything at ``/``
  (runc itself fails to create a missing ``/proc``); the wrapper gives that one
  directory to the namespace's root before runc starts.  The image keeps it owned by
  root: buildah maps owners back when it commits.
- ``podman build`` has no ``--pids-limit`` and refuses ``--security-opt
  no-new-privileges``: the wrapper writes both into the runtime's configuration.
- It records the containers it starts.  Killing ``podman build`` leaves a RUN step's
  processes running (runc's container outlives podman), so a build past its deadline is
  stopped by deleting those containers first; podman then fails the step and removes
  its working container as after any failed step.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from toolship.config import Settings
from toolship.errors import RuntimeUnavailable
from toolship.runtime.base import IdMap
from toolship.runtime.container import NAMESPACED_CAPS

__all__ = ["BuildLimits", "Confinement"]

_CPU_PERIOD = 100_000  # microseconds, the kernel's default CFS period
_STOP_WAIT = 30.0  # seconds podman gets to fail the step after its container is gone

_WRAPPER = '''\
#!{python} -I
"""toolship's OCI runtime wrapper for one podman build (toolship.catalog.confine)."""
import json, os, sys

RUNTIME = {runtime!r}
PIDS = {pids!r}
RECORD = {record!r}
STOPPED = {stopped!r}
args = sys.argv[1:]
bundle = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--bundle", "-b")), None)
if bundle is not None:
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    linux = spec.setdefault("linux", {{}})
    root = os.path.join(bundle, spec["root"]["path"])
    uid = [m["hostID"] for m in linux.get("uidMappings") or [] if m["containerID"] == 0]
    gid = [m["hostID"] for m in linux.get("gidMappings") or [] if m["containerID"] == 0]
    st = os.lstat(root)
    if uid and gid and (st.st_uid, st.st_gid) == (0, 0):
        os.lchown(root, uid[0], gid[0])
    linux.setdefault("resources", {{}})["pids"] = {{"limit": PIDS}}
    spec.setdefault("process", {{}})["noNewPrivileges"] = True
    with open(path + ".new", "w") as f:
        json.dump(spec, f)
    os.replace(path + ".new", path)
    with open(RECORD, "a") as f:
        f.write(args[-1] + "\\n")
    if os.path.exists(STOPPED):
        sys.exit("toolship: the build ran past its deadline; no further step starts")
os.execv(RUNTIME, [RUNTIME, *args])
'''


@dataclass(frozen=True)
class BuildLimits:
    """What one build's RUN steps may use, and who they are on the host."""

    memory_bytes: int
    cpus: float
    pids: int
    timeout: float  # seconds for the whole build
    idmap: IdMap | None  # None: no user namespace (rootless podman has its own)

    @classmethod
    def from_settings(cls, settings: Settings) -> BuildLimits:
        return cls(
            memory_bytes=int(settings.images.build_memory_gb * 1024**3),
            cpus=settings.images.build_cpus,
            pids=settings.local.pids_limit,
            timeout=float(settings.images.build_timeout_seconds),
            idmap=_build_idmap(settings.task_user, settings.task_subids),
        )

    def describe(self) -> str:
        """One line for the build log: what the RUN steps run as and within."""
        who = (
            f"as root of a user namespace whose root is {self.idmap.uid}:{self.idmap.gid} "
            "on the host"
            if self.idmap is not None
            else "without a user namespace of their own"
        )
        return (
            f"RUN steps run {who}, with at most {self.memory_bytes / 1024**3:g} GiB of "
            f"memory, {self.cpus:g} CPUs and {self.pids} processes; the build may take "
            f"{self.timeout:g} s\n"
        )


def _build_idmap(user: tuple[int, int], subids: tuple[int, int] | None) -> IdMap | None:
    """A task's mapping; without subordinate ids, root of the build is the task's user only."""
    idmap = IdMap.for_task(user, subids)
    if idmap is None and subids is None and user[0] != 0 and os.geteuid() == 0:
        return IdMap(user[0], user[1], 0, 1)
    return idmap


class Confinement:
    """The podman arguments of one build and how to stop it; its runtime wrapper lives in
    ``folder`` (private to the build: the caller removes it)."""

    def __init__(self, limits: BuildLimits, folder: Path) -> None:
        self.limits = limits
        self.folder = folder
        self.record = folder / "containers"
        self.stopped = folder / "stopped"
        self.wrapper = folder / "runtime"
        self.runtime = _oci_runtime()

    def write(self) -> None:
        self.folder.mkdir(mode=0o700, exist_ok=True)
        self.record.touch(mode=0o600)
        text = _WRAPPER.format(
            python=sys.executable,
            runtime=self.runtime,
            pids=self.limits.pids,
            record=str(self.record),
            stopped=str(self.stopped),
        )
        self.wrapper.write_text(text)
        self.wrapper.chmod(0o700)

    def global_args(self) -> list[str]:
        """Before ``build``: podman's runtime is the wrapper."""
        return ["--runtime", str(self.wrapper)]

    def build_args(self) -> list[str]:
        limits = self.limits
        argv = [
            "--memory", f"{limits.memory_bytes}b", "--memory-swap", f"{limits.memory_bytes}b",
            "--cpu-period", str(_CPU_PERIOD),
            "--cpu-quota", str(max(1000, int(limits.cpus * _CPU_PERIOD))),
            "--cap-drop", "all", "--cap-add", ",".join(NAMESPACED_CAPS),
            # Every step runs: none is taken from another build's cache, which may have run
            # for someone else, with a network, or without this confinement.
            "--layers=false",
        ]  # fmt: skip
        idmap = limits.idmap
        if idmap is not None:
            maps = [f"0:{idmap.uid}:1"], [f"0:{idmap.gid}:1"]
            if idmap.count > 1:
                rest = f"1:{idmap.first}:{idmap.count - 1}"
                maps[0].append(rest)
                maps[1].append(rest)
            for uid_map in maps[0]:
                argv += ["--userns-uid-map", uid_map]
            for gid_map in maps[1]:
                argv += ["--userns-gid-map", gid_map]
        return argv

    def stop(self, build: subprocess.Popen[bytes]) -> None:
        """End the build: no RUN step starts any more, the running one's container goes,
        and podman (which then fails that step and cleans up) is killed if it lingers.

        The wrapper records a container before it looks for ``stopped``, and this sets
        ``stopped`` before it reads the record: each container is either never started
        or deleted here.
        """
        self.stopped.touch()
        for name in self._containers():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [self.runtime, "delete", "--force", name],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(build.pid, sig)
            try:
                build.wait(_STOP_WAIT)
                return
            except subprocess.TimeoutExpired:
                continue

    def _containers(self) -> list[str]:
        try:
            return [line for line in self.record.read_text().splitlines() if line]
        except OSError:
            return []


@functools.cache
def _oci_runtime() -> str:
    """The OCI runtime podman is configured with (runc here: see ENVIRONMENT)."""
    try:
        done = subprocess.run(
            ["podman", "info", "--format", "{{.Host.OCIRuntime.Path}}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeUnavailable(f"podman info failed ({exc}); is podman installed?") from exc
    path = done.stdout.strip()
    if done.returncode != 0 or not path:
        found = shutil.which("runc")
        if found is None:
            raise RuntimeUnavailable(
                "podman does not say which OCI runtime it uses and runc is not installed: "
                "install runc (scripts/setup-host.sh does)"
            )
        return found
    return path
