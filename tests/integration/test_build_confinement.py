"""A service build against real podman: its RUN steps are held in as a task's are.

They run as root of the task's user namespace, within memory and pids limits, and a
build past its deadline is stopped with nothing of it left running.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import unique_name
from toolship.catalog import images
from toolship.catalog.images import BuildFailed, BuildLimits
from toolship.runtime.base import ExecSpec, IdMap
from toolship.runtime.container import ContainerRuntime

TASK_USER = (65534, 65534)
SUBIDS = (1_000_000_000, 65536)
LIMITS = BuildLimits(
    memory_bytes=256 * 1024**2,
    cpus=1.0,
    pids=64,
    timeout=300.0,
    idmap=IdMap(*TASK_USER, *SUBIDS),
)


def _podman(*args: str) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def tags(busybox: str) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    if made:
        subprocess.run(
            ["podman", "rmi", "--force", "--ignore", *made], capture_output=True, check=False
        )


def _build(
    tmp_path: Path, tags: list[str], body: str, limits: BuildLimits = LIMITS
) -> tuple[str, bytes]:
    context = tmp_path / unique_name("ctx")
    context.mkdir()
    (context / "data.txt").write_text("copied in\n")
    (context / "Containerfile").write_text(f"FROM localhost/toolship-busybox\n{body}")
    tag = f"localhost/{unique_name('confined')}:1"
    tags.append(tag)
    log: list[bytes] = []
    images.build(context, file=None, tag=tag, network=False, log=log.append, limits=limits)
    return tag, b"".join(log)


def _run_as_a_task(image: str, command: list[str], root: Path) -> str:
    spec = ExecSpec(
        name=unique_name("task"),
        task_id="build-confinement",
        image=image,
        command=tuple(command),
        workdir=None,
        env={},
        mounts=(),
        root=root,
        user=TASK_USER,
        idmap=IdMap(*TASK_USER, *SUBIDS),
    )
    argv = ContainerRuntime("podman", rootless=False).command(spec)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_run_steps_are_root_of_the_task_user_namespace_within_limits(
    tmp_path: Path, tags: list[str]
) -> None:
    tag, log = _build(
        tmp_path, tags,
        "COPY data.txt /data/data.txt\n"
        "RUN cat /proc/self/uid_map /proc/self/gid_map"
        " /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes"
        " /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
        " && mkdir /made && echo made-by-run > /made/f && chown 1:1 /made/f"
        " && grep CapEff /proc/self/status\n"
        'CMD ["cat", "/made/f", "/data/data.txt"]\n',
    )  # fmt: skip
    text = log.decode()
    maps = [line.split() for line in text.splitlines() if len(line.split()) == 3]
    # Root of the build is the task's user on the host, its other users the subordinate
    # ids: what a RUN step could do to the host is what a task could.
    assert ["0", "65534", "1"] in maps and ["1", "1000000000", "65535"] in maps, text
    # cgroup v1 (this project's hosts): pids, memory, and a CPU's worth of quota.
    assert f"\n64\n{256 * 1024**2}\n100000\n" in text, text
    # The capabilities a task's root keeps (CHOWN … SETUID), nothing more.
    assert "CapEff:\t00000000000000fb" in text, text
    assert "toolship: RUN steps run as root of a user namespace whose root is 65534:65534" in text
    # The image holds the files as root and user 1 made them, and runs as a task runs.
    owners = _podman("run", "--rm", "--network", "none", tag, "stat", "-c", "%u:%g %n",
                     "/", "/made", "/made/f", "/data/data.txt")  # fmt: skip
    assert owners.split("\n")[:4] == ["0:0 /", "0:0 /made", "1:1 /made/f", "0:0 /data/data.txt"]
    assert _run_as_a_task(tag, ["cat", "/made/f", "/data/data.txt"], tmp_path) == (
        "made-by-run\ncopied in\n"
    )


def test_a_run_step_over_its_memory_limit_fails_the_build(tmp_path: Path, tags: list[str]) -> None:
    limits = replace(LIMITS, memory_bytes=32 * 1024**2)
    with pytest.raises(BuildFailed) as failed:
        _build(tmp_path, tags, "RUN dd if=/dev/zero of=/dev/null bs=200M count=1\n", limits)
    message = failed.value.message
    assert "STEP 2/2: RUN dd" in message, message
    assert "killed" in message and "images.build_memory_gb (0.03125 GiB" in message, message


def test_a_build_past_its_deadline_is_stopped_and_leaves_nothing_running(
    tmp_path: Path, tags: list[str]
) -> None:
    before = _podman("ps", "--all", "--external", "--quiet", "--no-trunc").split()
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text("FROM localhost/toolship-busybox\nRUN sleep 617\n")
    tag = f"localhost/{unique_name('deadline')}:1"
    tags.append(tag)
    log: list[bytes] = []
    limits = replace(LIMITS, timeout=2.0)
    with pytest.raises(BuildFailed) as failed:
        images.build(context, file=None, tag=tag, network=False, log=log.append, limits=limits)
    message = failed.value.message
    assert "images.build_timeout_seconds (2 s)" in message, message
    assert b"toolship: the build was stopped" in b"".join(log)
    # Neither the RUN step's process nor a working container is left behind.
    after = _podman("ps", "--all", "--external", "--quiet", "--no-trunc").split()
    assert set(after) <= set(before), after
    leftover = subprocess.run(["pgrep", "-f", "sleep 617"], capture_output=True, text=True)
    assert leftover.stdout == "", leftover.stdout
    assert _podman("images", "--quiet", "--filter", f"reference={tag}") == ""
