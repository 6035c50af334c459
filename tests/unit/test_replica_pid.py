"""A replica's name is held by a running server only: not by one killed and left a zombie."""

from __future__ import annotations

import subprocess
import time

from toolship.engine.replicas import _pid_alive


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


def test_a_killed_unreaped_server_does_not_hold_its_name() -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert _pid_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while _state(child.pid) != "Z":  # dead, not yet reaped by us, its parent
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.01)
        assert not _pid_alive(child.pid)
    finally:
        child.wait()
    assert not _pid_alive(child.pid)  # reaped: gone
