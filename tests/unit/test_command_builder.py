"""Golden command lines: what toolship asks podman and docker to do, flag by flag."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from toolship.runtime import ExecSpec, IdMap, Mount
from toolship.runtime.base import missing_image_message
from toolship.runtime.container import ContainerRuntime, pullable
from toolship.runtime.process import ProcessRuntime

SPEC = ExecSpec(
    name="toolship-t1-1-0",
    task_id="t1",
    image="localhost/tool:1",
    command=("sh", "-c", "echo hi > out.txt"),
    workdir="/work",
    env={"B": "2", "A": "1"},
    mounts=(
        Mount(Path("/h/a/root/work"), "/work", readonly=False),
        Mount(Path("/data/in.txt"), "/work/in.txt", readonly=True),
    ),
    root=Path("/h/a/root"),
    cpus=2.0,
    memory_bytes=512 * 1024**2,
    network=False,
    pids_limit=4096,
    user=(1000, 1000),
)

SECURITY = [
    "--read-only",
    "--tmpfs",
    "/tmp:rw,exec,mode=1777,size=536870912",
    "--cap-drop",
    "all",
    "--security-opt",
    "no-new-privileges",
    "--pids-limit",
    "4096",
]
TAIL = [
    "--cpus", "2",
    "--memory", "536870912b", "--memory-swap", "536870912b",
    "--workdir", "/work",
    "--env", "A=1", "--env", "B=2",
    "--volume", "/h/a/root/work:/work:rw",
    "--volume", "/data/in.txt:/work/in.txt:ro",
    "localhost/tool:1", "sh", "-c", "echo hi > out.txt",  # after the image's ENTRYPOINT, if any
]  # fmt: skip


def test_podman_rootful() -> None:
    argv = ContainerRuntime("podman", rootless=False).command(SPEC)
    assert argv == [
        "podman", "run", "--rm", "--name", "toolship-t1-1-0",
        "--label", "io.toolship.task=t1",
        "--pull", "never", "--network", "none", "--log-driver", "none",
        *SECURITY, "--user", "1000:1000", *TAIL,
    ]  # fmt: skip


def test_podman_rootful_runs_the_task_as_root_of_a_user_namespace() -> None:
    spec = dataclasses.replace(SPEC, user=(65534, 65534), idmap=IdMap(65534, 65534, 10**9, 65536))
    argv = ContainerRuntime("podman", rootless=False).command(spec)
    confinement = argv[argv.index("--read-only") : argv.index("--cpus")]
    assert confinement == [
        "--read-only", "--tmpfs", "/tmp:rw,exec,mode=1777,size=536870912",
        "--cap-drop", "all", "--cap-add", "CHOWN,DAC_OVERRIDE,FOWNER,FSETID,KILL,SETGID,SETUID",
        "--security-opt", "no-new-privileges", "--pids-limit", "4096",
        "--uidmap", "0:65534:1", "--gidmap", "0:65534:1",
        "--uidmap", "1:1000000000:65535", "--gidmap", "1:1000000000:65535",
        "--user", "0:0",
    ]  # fmt: skip


def test_no_user_namespace_where_podman_cannot_give_one() -> None:
    spec = dataclasses.replace(SPEC, idmap=IdMap(1000, 1000, 10**9, 65536))
    rank = dataclasses.replace(spec, pod="toolship-t1-1-0-pod")
    for runtime, each in [
        (ContainerRuntime("docker", rootless=False), spec),  # docker maps users daemon-wide
        (ContainerRuntime("podman", rootless=True), spec),  # rootless: podman's own namespace
        (ContainerRuntime("podman", rootless=False), rank),  # ranks share their pod's
    ]:
        argv = runtime.command(each)
        assert "--uidmap" not in argv and "--cap-add" not in argv
        assert argv[argv.index("--user") + 1] == "1000:1000"


def test_root_server_maps_ids_only_for_an_unprivileged_task_user() -> None:
    subids = (10**9, 65536)
    if os.geteuid() == 0:
        assert IdMap.for_task((65534, 65534), subids) == IdMap(65534, 65534, 10**9, 65536)
    else:
        assert IdMap.for_task((65534, 65534), subids) is None  # rootless podman's own
    assert IdMap.for_task((0, 0), subids) is None  # task_user "0:0": the operator's choice
    assert IdMap.for_task((65534, 65534), None) is None  # task_subids "": no namespace


def test_podman_rootless_keeps_the_users_id() -> None:
    argv = ContainerRuntime("podman", rootless=True).command(SPEC)
    i = argv.index("--userns")
    assert argv[i : i + 4] == ["--userns", "keep-id", "--user", "1000:1000"]


def test_the_command_alone_replaces_the_images_entrypoint() -> None:
    spec = dataclasses.replace(SPEC, keep_entrypoint=False)
    argv = ContainerRuntime("podman", rootless=False).command(spec)
    assert argv[-5:] == ["--entrypoint", "sh", "localhost/tool:1", "-c", "echo hi > out.txt"]


def test_docker_uses_the_same_builder() -> None:
    argv = ContainerRuntime("docker", rootless=False).command(SPEC)
    assert argv == [
        "docker", "run", "--rm", "--name", "toolship-t1-1-0",
        "--label", "io.toolship.task=t1",
        "--pull", "never", "--network", "none",
        *SECURITY, "--user", "1000:1000", *TAIL,
    ]  # fmt: skip


def test_network_and_stdin_when_asked() -> None:
    from dataclasses import replace

    argv = ContainerRuntime("podman", rootless=False).command(
        replace(SPEC, network=True, interactive=True, memory_bytes=None, cpus=None)
    )
    assert argv[argv.index("--network") + 1] == "bridge"
    assert "--interactive" in argv
    assert "--memory" not in argv and "--cpus" not in argv


def test_a_mount_on_tmp_replaces_the_tmpfs() -> None:
    from dataclasses import replace

    spec = replace(SPEC, mounts=(Mount(Path("/h/root/tmp"), "/tmp", readonly=False),))
    argv = ContainerRuntime("podman", rootless=False).command(spec)
    assert "--tmpfs" not in argv
    assert "/h/root/tmp:/tmp:rw" in argv


def test_stop_removes_the_container() -> None:
    assert ContainerRuntime("podman").stop_commands("c1", 2) == [
        ["podman", "rm", "--force", "--ignore", "--time", "2", "c1"]
    ]
    assert ContainerRuntime("docker").stop_commands("c1", 2) == [
        ["docker", "rm", "--force", "--time", "2", "c1"]
    ]


def test_runtime_failures_are_explained() -> None:
    rt = ContainerRuntime("podman")
    missing = rt.start_failure(125, "Error: localhost/nope: image not known\n", "localhost/nope")
    assert missing is not None and "podman build -t localhost/nope" in missing
    assert rt.start_failure(125, "Error: some other failure\n", "x") is None
    assert rt.start_failure(1, "image not known", "x") is None  # the command's own exit code
    idmapped = (
        "Error: mounting storage for container 2b: creating overlay mount to /var/lib/containers/"
        'storage/overlay/4a/merged, mount_data="lowerdir=/var/lib/containers/storage/overlay/4a/'
        'mapped/0/l/2E:/var/lib/containers/storage/overlay/4a/mapped/0/l/diff1": no such file'
    )
    why = rt.start_failure(125, idmapped, "x")
    assert why is not None and "scripts/setup-host.sh" in why and "local.task_subids" in why


def test_process_runtime_runs_in_the_host_workdir() -> None:
    rt = ProcessRuntime()
    command = ["sh", "-c", "echo hi > out.txt"]
    assert rt.command(SPEC) == command
    if os.geteuid() == 0:  # a root server drops to the task's user for the command
        assert rt.run_as(SPEC) == (1000, 1000)
        root_spec = dataclasses.replace(SPEC, user=(0, 0))
        assert rt.run_as(root_spec) is None  # local.task_user = "0:0": the operator's choice
    else:
        assert rt.run_as(SPEC) is None
    assert rt.cwd(SPEC) == Path("/h/a/root/work")
    env = rt.environment(SPEC)
    assert env is not None
    assert env["TOOLSHIP_ROOT"] == "/h/a/root"
    assert env["A"] == "1"
    assert not rt.isolated


@pytest.mark.parametrize(
    ("image", "pull"),
    [
        ("localhost/tool:1", False),
        ("busybox", False),
        ("127.0.0.1:5055/team/tool:1", False),  # a tag: what this host has
        ("localhost/tool@sha256:" + "a" * 64, False),
        ("127.0.0.1:5055/team/tool@sha256:" + "a" * 64, True),  # a service's pin
        ("127.0.0.1:5055/other@sha256:" + "a" * 64, False),  # not under team/
        ("evil.example.org/tool@sha256:" + "a" * 64, False),  # not a registry named
        ("127.0.0.1:5055/team-x/tool@sha256:" + "a" * 64, False),
    ],
)
def test_only_an_image_pinned_by_digest_in_a_named_registry_is_pulled(
    image: str, pull: bool
) -> None:
    assert pullable(image, ["127.0.0.1:5055/team", "registry.example.org"]) is pull
    spec = dataclasses.replace(SPEC, image=image, pull=pull)
    argv = ContainerRuntime("podman", rootless=False).command(spec)
    assert argv[argv.index("--pull") + 1] == ("missing" if pull else "never")


def test_a_missing_image_pinned_in_a_registry_names_the_settings_that_let_it_be_pulled() -> None:
    pinned = "127.0.0.1:5055/team/tool@sha256:" + "a" * 64
    message = missing_image_message(pinned, "Error: image not known\n")
    assert "images.approved_registries and images.registry" in message
    assert f"podman pull {pinned}" in message
    local = missing_image_message("localhost/tool@sha256:" + "a" * 64, "")
    assert "podman build -t" in local
