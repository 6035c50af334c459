"""podman and docker: one command builder, two binaries.

Defaults are the safe ones: no network, read-only root file system with a
tmpfs ``/tmp``, no-new-privileges, a pids limit, ``--pull never`` (no registry
is assumed reachable: a tag is what this host has) unless the spec says ``pull``
(see :func:`pullable`), and labels that tie the container to its task.

Who the task is: on a root server with podman, root of a user namespace
(:class:`~toolship.runtime.base.IdMap`) whose root is ``local.task_user`` on
the host, with root's usual file capabilities — so ``tar x``, ``chown`` and
tools that expect root work as under ``podman run``, while on the host the task
stays an unprivileged user.  Otherwise (docker, rootless podman, the ranks of a
multi-node task, ``local.task_subids = ""``) the task's uid with every
capability dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from toolship.errors import RuntimeUnavailable
from toolship.runtime.base import (
    ExecSpec,
    IdMap,
    RunImage,
    missing_image_message,
    registry_host,
    within,
)
from toolship.runtime.gpus import container_devices, visible_env
from toolship.runtime.launch import run_for_output

__all__ = ["ContainerRuntime", "pullable"]

LABEL_TASK = "io.toolship.task"
# What root in a task's user namespace keeps of podman's defaults: the file capabilities
# (its own files only: the namespace maps no other host user) and switching among its
# own users.  Not NET_BIND_SERVICE, SETFCAP, SETPCAP, SYS_CHROOT, MKNOD or AUDIT_WRITE.
NAMESPACED_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID")


def pullable(image: str, registries: Sequence[str]) -> bool:
    """Whether a host that lacks ``image`` may pull it: ``REGISTRY/PATH@sha256:…`` from
    one of ``registries`` (hosts, or host/path prefixes: the operator's ``images``).

    A digest names the same bytes wherever they come from (a service's pinned image on a
    Slurm node that has not run it yet); a tag, or a registry the operator did not name,
    would let a task make the server fetch what and from where it likes.
    """
    name, _, digest = image.partition("@")
    if registry_host(name) in (None, "localhost") or not digest.startswith("sha256:"):
        return False
    return within(name, registries)


def _rootless() -> bool:
    return os.geteuid() != 0


class ContainerRuntime:
    isolated = True

    def __init__(self, binary: str, *, rootless: bool | None = None) -> None:
        self.name = binary
        self.binary = binary
        self.rootless = _rootless() if rootless is None else rootless
        self._images = _Images(binary)

    def command(self, spec: ExecSpec) -> list[str]:
        argv = [self.binary, "run", "--rm", "--name", spec.name]
        argv += _labels(spec)
        argv += ["--pull", "missing" if spec.pull else "never"]
        if spec.pod is not None:
            argv += ["--pod", spec.pod]  # the pod's namespace: its network, its user ids
        else:
            argv += ["--network", _network(spec)]
        if self.binary == "podman":
            # Output goes straight to our files; a second copy in podman's log is waste.
            argv += ["--log-driver", "none"]
        argv += self._confinement(spec)
        argv += _resources(spec)
        devices = container_devices(spec.gpus or ())
        argv += devices
        if spec.interactive:
            argv.append("--interactive")
        if spec.workdir:
            argv += ["--workdir", spec.workdir]
        argv += _environment(spec, renumbered=bool(devices))
        for m in spec.mounts:
            argv += ["--volume", f"{m.host}:{m.container}:{'ro' if m.readonly else 'rw'}"]
        if spec.keep_entrypoint:  # as `podman run IMAGE COMMAND`, and as CWL and Funnel do
            return [*argv, spec.image, *spec.command]
        return [*argv, "--entrypoint", spec.command[0], spec.image, *spec.command[1:]]

    async def image(self, spec: ExecSpec) -> RunImage | None:
        found = await self._images.get(spec.image)
        if found is None:
            return None
        return found if spec.keep_entrypoint else dataclasses.replace(found, entrypoint=[])

    def _confinement(self, spec: ExecSpec) -> list[str]:
        """Read-only root, a bounded /tmp, no new privileges, who the task is (see above)."""
        argv = ["--read-only"]
        if not any(m.container == "/tmp" for m in spec.mounts):
            argv += ["--tmpfs", f"/tmp:rw,exec,mode=1777,size={spec.memory_bytes or 1024**3}"]
        idmap = self._idmap(spec)
        argv += ["--cap-drop", "all"]
        if idmap is not None:
            argv += ["--cap-add", ",".join(NAMESPACED_CAPS)]
        argv += ["--security-opt", "no-new-privileges"]
        argv += ["--pids-limit", str(spec.pids_limit)]
        if idmap is not None:
            return [*argv, *_id_maps(idmap), "--user", "0:0"]
        if self.rootless and self.binary == "podman" and spec.pod is None:
            argv += ["--userns", "keep-id"]
        argv += ["--user", f"{spec.user[0]}:{spec.user[1]}"]
        return argv

    def _idmap(self, spec: ExecSpec) -> IdMap | None:
        # Ranks of a multi-node task share their pod's namespaces, where a mapping of
        # their own is not allowed; docker maps users only daemon-wide.
        if self.binary != "podman" or self.rootless or spec.pod is not None:
            return None
        return spec.idmap

    def run_as(self, spec: ExecSpec) -> tuple[int, int] | None:
        return None  # the runtime runs as the server; the user namespace maps the task's user

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

    def start_failure(self, exit_code: int, stderr_tail: str, image: str) -> str | None:
        if exit_code != 125:  # podman's and docker's own failures; 126/127: the command's
            return None
        text = stderr_tail.lower()
        if any(
            marker in text
            for marker in ("image not known", "no such image", "unable to find image", "pull")
        ):
            return missing_image_message(image, stderr_tail)
        if "creating overlay mount" in text and "/mapped/" in text:
            return _IDMAPPED_LAYERS
        return None


_IDMAPPED_LAYERS = (
    "podman could not mount the image for the task's user namespace: this podman "
    "(4.3) fails to mount overlay layers through idmapped mounts on this kernel. Run "
    "scripts/setup-host.sh, which tells podman to copy the layers with their owners "
    'mapped instead (once per image), or set local.task_subids = "" to run tasks '
    "without a user namespace (as local.task_user, without capabilities)"
)


def _id_maps(idmap: IdMap) -> list[str]:
    """Container root is the task's user on the host; its other ids, the subordinate range."""
    argv = ["--uidmap", f"0:{idmap.uid}:1", "--gidmap", f"0:{idmap.gid}:1"]
    if idmap.count > 1:
        rest = f"1:{idmap.first}:{idmap.count - 1}"
        argv += ["--uidmap", rest, "--gidmap", rest]
    return argv


def _sha256(image_id: str) -> str:
    """docker says ``sha256:…``, podman the bare hex."""
    return "sha256:" + image_id.removeprefix("sha256:") if image_id else ""


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


def _environment(spec: ExecSpec, *, renumbered: bool) -> list[str]:
    argv: list[str] = []
    # The task's GPUs win over what its executor's env says: it may not pick another's.
    env = {**spec.env, **visible_env(spec.gpus, renumbered=renumbered)}
    for key, value in sorted(env.items()):
        argv += ["--env", f"{key}={value}"]
    for key in spec.env_passthrough:
        argv += ["--env", key]  # the value comes from the launching environment
    return argv


def _network(spec: ExecSpec) -> str:
    return "host" if spec.host_network else "bridge" if spec.network else "none"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class _Images:
    """What ``podman image inspect`` says of each image, asked again only when it may differ.

    Inspecting costs podman's start-up (~75 ms of CPU here), on every executor, beside the
    container starting.  An answer is kept with the state of the image store's index
    (``{GraphRoot}/{driver}-images/images.json``, which podman rewrites for every tag,
    pull, build and removal): when the index changed, the image is inspected again, so a
    tag that moved is never answered from memory.  Without such an index (docker, a
    store podman does not report) every call inspects.
    """

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self._index: Path | None = None
        self._looked_up = binary != "podman"  # docker: nothing to look up
        self._known: dict[str, tuple[tuple[int, int, int], RunImage]] = {}

    async def get(self, image: str) -> RunImage | None:
        if not self._looked_up:  # once: podman info, in a thread
            self._index = await asyncio.to_thread(_image_index, self.binary)
            self._looked_up = True
        stamp = self._stamp()
        known = self._known.get(image)
        if stamp is not None and known is not None and known[0] == stamp:
            return known[1]
        found = await self._inspect(image)
        if found is not None and stamp is not None and self._stamp() == stamp:
            self._known[image] = (stamp, found)  # the store did not change while it ran
        return found

    def _stamp(self) -> tuple[int, int, int] | None:
        """The index file's identity and modification (None: not known, never cached)."""
        if self._index is None:
            return None
        try:
            st = self._index.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    async def _inspect(self, image: str) -> RunImage | None:
        template = "{{json .Config.Entrypoint}}\t{{.Digest}}\t{{.Id}}"
        found = await run_for_output([self.binary, "image", "inspect", "--format", template,
                                      image])  # fmt: skip
        if found is None:
            return None
        words_json, _, rest = found.strip().partition("\t")
        digest, _, image_id = rest.partition("\t")
        try:
            words = json.loads(words_json or "null")
        except ValueError:
            words = None
        return RunImage(
            entrypoint=[str(w) for w in words] if isinstance(words, list) else [],
            digest=digest.strip(),
            image_id=_sha256(image_id.strip()),
        )


def _image_index(binary: str) -> Path | None:
    """podman's image index file, from ``podman info`` (None when it says none)."""
    try:
        done = subprocess.run(
            [binary, "info", "--format", "{{.Store.GraphRoot}}\t{{.Store.GraphDriverName}}"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    root, _, driver = done.stdout.strip().partition("\t")
    index = Path(root) / f"{driver}-images" / "images.json"
    return index if root and driver and index.is_file() else None
