"""A server running as root runs its tasks as an unprivileged user (local.task_user)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolship import Client, TaskState


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, server.token, timeout=120) as c:
        yield c


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shared directory with a root-only file the task was never given."""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o755)
    private = folder / "private.txt"
    private.write_text("root only\n")
    private.chmod(0o600)
    monkeypatch.setenv("TOOLSHIP_LOCAL__SHARED_DIRS", f'["{folder}"]')
    return folder


def test_tasks_are_root_inside_and_nobody_on_the_host(
    backend: str, client: Client, busybox: str
) -> None:
    """Root of a user namespace: root's file capabilities inside, local.task_user outside."""
    assert os.geteuid() == 0, "these tests are about a server running as root"
    task = client.run(busybox, ["sh", "-c", "id -u; id -g; cat /proc/self/uid_map"])
    assert task.state is TaskState.COMPLETE, task.info().logs[-1]
    assert task.logs().split() == ["0", "0", "0", "65534", "1", "1", "1000000000", "65535"]


def test_tar_keeps_owners_as_under_podman_run(
    backend: str, client: Client, busybox: str, tmp_path: Path
) -> None:
    """`tar x` as root restores the archive's owners (it needs CAP_CHOWN), as a tool expects."""
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "a.txt").write_text("a\n")
    os.chown(tree / "d" / "a.txt", 1234, 2345)
    archive = tmp_path / "t.tar"
    subprocess.run(["tar", "-C", str(tree), "-cf", str(archive), "d"], check=True)
    script = "tar xf t.tar && stat -c '%u:%g' d/a.txt && chown 7:8 d && stat -c '%u:%g' d"
    task = client.run(busybox, ["sh", "-c", script], inputs={"t.tar": str(archive)})
    assert task.state is TaskState.COMPLETE, task.logs("stderr")
    assert task.logs().split() == ["1234:2345", "7:8"]


def test_the_process_runtime_runs_as_the_task_user_too(client: Client, busybox: str) -> None:
    task = client.run(busybox, ["sh", "-c", "id -u > u.txt; cat u.txt"], runtime="process")
    assert task.state is TaskState.COMPLETE, task.info().logs[-1]
    assert task.logs().split() == ["65534"]


def test_root_only_inputs_are_readable_but_a_root_file_not_given_is_not(
    shared: Path, client: Client, busybox: str, tmp_path: Path
) -> None:
    given = tmp_path / "given.txt"
    given.write_text("given\n")
    given.chmod(0o600)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "inner.txt").write_text("inner\n")
    (folder / "inner.txt").chmod(0o600)
    task = client.run(
        busybox,
        ["sh", "-c", f"cat given.txt folder/inner.txt; cat {shared}/private.txt || echo refused"],
        inputs={"given.txt": str(given), "folder": f"{folder}/"},
    )
    assert task.state is TaskState.COMPLETE, task.info().logs[-1]
    assert task.logs().split() == ["given", "inner", "refused"]
    assert "Permission denied" in task.logs("stderr")


def test_content_and_copied_inputs_belong_to_the_task(
    client: Client, busybox: str, tmp_path: Path
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("a\n")
    task = client.run(
        busybox,
        ["sh", "-c", "echo b >> c.txt && echo b >> in.txt && cat c.txt in.txt"],
        content={"c.txt": "a\n"},
        inputs={"in.txt": str(src)},
        writable_inputs=True,
    )
    assert task.state is TaskState.COMPLETE, task.info().logs[-1]
    assert task.logs().split() == ["a", "b", "a", "b"]
    assert src.read_text() == "a\n"


def test_outputs_get_the_servers_owner_by_default(
    client: Client, busybox: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    task = client.run(busybox, ["sh", "-c", "echo x > o.txt"], outputs={"o.txt": str(out)})
    assert task.state is TaskState.COMPLETE, task.info().logs[-1]
    assert (out.stat().st_uid, out.stat().st_gid) == (os.getuid(), os.getgid())


@pytest.fixture
def owner(monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    monkeypatch.setenv("TOOLSHIP_LOCAL__OUTPUT_OWNER", "1234:2345")
    return (1234, 2345)


def test_outputs_get_the_configured_owner(
    backend: str, owner: tuple[int, int], client: Client, busybox: str, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    task = client.run(
        busybox, ["sh", "-c", "mkdir -p out/sub && echo x > out/sub/o.txt"],
        outputs={"out/": f"{results}/"},
    )  # fmt: skip
    assert task.state is TaskState.COMPLETE, task.info().logs[-1]
    made = results / "sub" / "o.txt"
    assert made.read_text() == "x\n"
    assert (made.stat().st_uid, made.stat().st_gid) == owner
    assert ((results / "sub").stat().st_uid, (results / "sub").stat().st_gid) == owner


def test_the_hosts_root_in_the_task_is_an_explicit_choice(
    monkeypatch: pytest.MonkeyPatch, home: Path, busybox: str
) -> None:
    from toolship.embedded import ensure_server, stop_server

    monkeypatch.setenv("TOOLSHIP_LOCAL__TASK_USER", "0:0")
    server = ensure_server(home)
    try:
        with Client(server.url, server.token) as client:
            task = client.run(busybox, ["sh", "-c", "id -u; cat /proc/self/uid_map"])
            assert task.logs().split() == ["0", "0", "0", "4294967295"]  # no namespace
    finally:
        stop_server(home)


def test_a_bad_task_user_setting_says_what_is_expected(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    from toolship.config import load_settings
    from toolship.errors import ConfigError

    monkeypatch.setenv("TOOLSHIP_LOCAL__TASK_USER", "nobody")
    with pytest.raises(ConfigError, match=r"local\.task_user.*UID:GID"):
        load_settings()


@pytest.mark.parametrize(
    ("subids", "message"),
    [
        ("60000:10000", "includes 65534, which local.task_user = '65534:65534' uses"),
        ("nobody", "give FIRST:COUNT"),
        ("4294967290:65536", "give FIRST:COUNT"),
    ],
)
def test_bad_task_subids_say_what_is_expected(
    monkeypatch: pytest.MonkeyPatch, home: Path, subids: str, message: str
) -> None:
    from toolship.config import load_settings
    from toolship.errors import ConfigError

    monkeypatch.setenv("TOOLSHIP_LOCAL__TASK_SUBIDS", subids)
    with pytest.raises(ConfigError, match=message):
        load_settings()
    monkeypatch.setenv("TOOLSHIP_LOCAL__TASK_SUBIDS", "65535:65536")  # just above: fine
    assert load_settings().task_subids == (65535, 65536)
