"""The CLI as a new user drives it: real processes, the embedded server started on demand."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import toolship
from toolship.embedded import find_server, stop_server


@pytest.fixture
def cli_home(home: Path, busybox: str) -> object:
    yield home
    stop_server(home)


def test_run_attached_streams_and_exits_with_the_tools_code(cli_home: Path, busybox: str) -> None:
    r = toolship("run", busybox, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert "err\n" in r.stderr
    task_id = toolship("ps", "-a", "--json", check=True)
    tid = json.loads(task_id.stdout)[0]["id"]
    show = toolship("show", tid, check=True).stdout
    assert "EXECUTOR_ERROR" in show and "exit 3" in show
    details = json.loads(toolship("show", tid, "--json", check=True).stdout)
    assert details["task"]["logs"][0]["logs"][0]["exit_code"] == 3


def test_detach_logs_wait_and_ps_filters(cli_home: Path, busybox: str) -> None:
    tid = toolship(
        "run", "-d", "--name", "greeting-1", "--tag", "project=demo", busybox, "--",
        "sh", "-c", "echo hello; echo oops >&2",
    ).stdout.strip()  # fmt: skip
    assert toolship("wait", tid).returncode == 0
    assert toolship("logs", tid, check=True).stdout == "hello\n"
    assert toolship("logs", tid, "--stderr", check=True).stdout == "oops\n"
    assert tid in toolship("ps", "-a", "--name", "greet", check=True).stdout
    assert tid not in toolship("ps", "-a", "--name", "other", check=True).stdout
    assert tid in toolship("ps", "-a", "--tag", "project=demo", check=True).stdout
    assert tid not in toolship("ps", "-a", "--tag", "project=else", check=True).stdout
    assert tid in toolship("ps", "--state", "complete", check=True).stdout
    assert tid not in toolship("ps", check=True).stdout  # finished tasks need --all


def test_cancel_from_the_cli(cli_home: Path, busybox: str) -> None:
    tid = toolship("run", "-d", busybox, "--", "sleep", "600").stdout.strip()
    time.sleep(1.5)
    assert "CANCEL" in toolship("cancel", tid, check=True).stdout
    assert toolship("wait", tid).returncode == 1
    assert "CANCELED" in toolship("show", tid, check=True).stdout


def test_server_status_and_stop(cli_home: Path, busybox: str) -> None:
    toolship("run", busybox, "--", "true", check=True)
    status = toolship("server", "status", check=True).stdout
    assert "running: http://127.0.0.1:" in status
    token_file = cli_home / "token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    found = find_server(cli_home)
    assert found is not None
    # the API is protected: no token, no answer
    assert httpx.get(f"{found.url}/ga4gh/tes/v1/tasks").status_code == 401
    assert "stopped" in toolship("server", "stop", check=True).stdout
    assert toolship("server", "status").returncode == 1


def test_bad_arguments_explain_themselves(cli_home: Path, busybox: str, tmp_path: Path) -> None:
    r = toolship("run", busybox, "--", "true", "-o", "x")
    assert r.returncode == 0  # after --, everything belongs to the tool
    r = toolship("run", "-i", "in=/etc/shadow", busybox, "--", "true")
    assert r.returncode == 2 and "outside the allowed roots" in r.stderr
    r = toolship("run", "--cpu", "1000", busybox, "--", "true")
    assert r.returncode == 2 and "1000 CPU cores" in r.stderr
    r = toolship("run", "--memory", "lots", busybox, "--", "true")
    assert r.returncode == 2 and "not a size" in r.stderr
    r = toolship("show", "nosuchtask")
    assert r.returncode == 2 and "no task with id" in r.stderr


def test_kill_dash_nine_loses_no_task_and_runs_none_twice(
    cli_home: Path, busybox: str, tmp_path: Path
) -> None:
    cores = str(os.cpu_count() or 1)
    out = tmp_path / "out"
    running = toolship(
        "run", "-d", "--cpu", cores, "-o", f"done.txt={out}/done.txt", busybox, "--",
        "sh", "-c", "echo started; sleep 4; echo finished > done.txt",
    ).stdout.strip()  # fmt: skip
    queued = [
        toolship("run", "-d", "--cpu", cores, busybox, "--", "echo", f"q{i}").stdout.strip()
        for i in range(2)
    ]
    deadline = time.monotonic() + 30
    while "RUNNING" not in toolship("show", running).stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    found = find_server(cli_home)
    assert found is not None
    os.kill(found.pid, signal.SIGKILL)
    time.sleep(0.5)
    # any CLI command brings the server back, which picks up where the old one was
    r = toolship("wait", running, *queued, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / "done.txt").read_text() == "finished\n"
    assert toolship("logs", running, check=True).stdout == "started\n"  # ran exactly once
    for tid in [running, *queued]:
        task = json.loads(toolship("show", tid, "--json", check=True).stdout)["task"]
        assert task["state"] == "COMPLETE"
        assert len(task["logs"]) == 1 and len(task["logs"][0]["logs"]) == 1
