"""toolship's own files are out of every task's reach, and only the server's user reads them.

On the embedded default the allowed roots are $HOME and /tmp, and the server's
home lies under one of them (here: under /tmp, as pytest's tmp_path).
"""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolship import Client, InvalidRequest, TaskState


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, server.token, timeout=120) as c:
        yield c


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_output_naming_the_database_is_refused_and_every_record_survives(
    home: Path, client: Client, busybox: str
) -> None:
    first = client.run(busybox, ["true"])
    with pytest.raises(InvalidRequest, match="toolship's own home") as info:
        client.submit(busybox, ["sh", "-c", "echo x > o"], outputs={"o": str(home / "toolship.db")})
    assert "use another directory" in str(info.value)
    assert client.task(first.id).state is TaskState.COMPLETE
    with sqlite3.connect(home / "toolship.db") as db:
        assert db.execute("select count(*) from tasks").fetchone()[0] == 1


def test_an_input_naming_the_token_is_refused(home: Path, client: Client, busybox: str) -> None:
    for url in (str(home / "token"), f"file://{home}/token", f"{home}/tasks/../token"):
        with pytest.raises(InvalidRequest, match="toolship's own home"):
            client.submit(busybox, ["cat", "t"], inputs={"t": url})


def test_a_symlink_to_the_token_is_refused(
    home: Path, client: Client, busybox: str, tmp_path: Path
) -> None:
    (tmp_path / "innocent").symlink_to(home / "token")
    with pytest.raises(InvalidRequest, match="toolship's own home"):
        client.submit(busybox, ["cat", "t"], inputs={"t": str(tmp_path / "innocent")})


def test_a_directory_input_holding_the_home_is_refused(
    home: Path, client: Client, busybox: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequest, match="holds toolship's own home"):
        client.submit(busybox, ["cat", "d/home/token"], inputs={"d": f"{tmp_path}/"})


def test_a_task_cannot_deliver_into_the_home_through_an_output_folder(
    home: Path, server: Any, client: Client, busybox: str, tmp_path: Path
) -> None:
    token = (home / "token").read_text()
    task = client.run(
        busybox,
        ["sh", "-c", "mkdir -p out/home && echo owned > out/home/token && echo ok > out/ok"],
        outputs={"out/": f"{tmp_path}/"},
    )
    assert task.state is TaskState.SYSTEM_ERROR, task.info()
    assert "toolship's own home" in " ".join(task.info().logs[-1].system_logs)
    assert (home / "token").read_text() == token


def test_a_map_pattern_never_matches_the_servers_files(
    home: Path, client: Client, busybox: str, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "token").write_text("mine\n")
    batch = client.map(busybox, ["true"], over=f"{tmp_path}/*/token", to=f"{tmp_path}/res/")
    urls = [[i.url for i in t.inputs or []] for t in batch.tasks(view="FULL")]
    assert urls == [[f"file://{tmp_path}/data/token"]]
    # Ended before the server stops: a member stopped mid-attempt keeps its input mounted
    # (for its resumption), which would outlive the test.
    batch.wait(60)


def test_the_servers_files_are_private(home: Path, client: Client, busybox: str) -> None:
    client.run(busybox, ["true"], content={"c.txt": "x"})
    assert mode(home) == 0o700
    assert mode(home / "tasks") == 0o700
    for task_dir in (home / "tasks").iterdir():
        assert mode(task_dir) == 0o700, task_dir
    for name in ("toolship.db", "toolship.db-wal", "toolship.db-shm", "token"):
        assert mode(home / name) == 0o600, name


def test_modes_of_an_older_home_are_fixed_at_start(home: Path, busybox: str) -> None:
    from toolship.embedded import ensure_server, stop_server

    server = ensure_server(home)
    with Client(server.url, server.token) as client:
        client.run(busybox, ["true"])
    stop_server(home)
    home.chmod(0o755)
    (home / "tasks").chmod(0o755)
    (home / "toolship.db").chmod(0o644)
    (home / "token").chmod(0o644)
    ensure_server(home)
    try:
        assert mode(home) == 0o700
        assert mode(home / "tasks") == 0o700
        assert mode(home / "toolship.db") == 0o600
        assert mode(home / "token") == 0o600
    finally:
        stop_server(home)
