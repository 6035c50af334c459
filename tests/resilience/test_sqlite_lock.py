"""SQLite's file locked by another process for longer than the busy timeout.

Another process holds ``BEGIN EXCLUSIVE`` on the server's database while the workload
runs.  A request that must write is answered 503 with the cause and the fix (never a
500, never a crash); the tasks' own progress waits; once the lock is released every
task completes as if nothing had happened.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.resilience.harness import TES, Bucket, check, reports_waiting, session, submit_workload
from tests.security.crashing import Server, wait_for

HOLD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
db.execute("ROLLBACK")
"""


@contextmanager
def locked(database: Path) -> Iterator[None]:
    """``BEGIN EXCLUSIVE`` on ``database``, held by another process until the block ends."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(database)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as holder:  # fmt: skip
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        try:
            yield
        finally:
            holder.stdin.close()  # the holder rolls back and exits
            holder.wait(10)


def test_sqlite_locked_by_another_process(
    bucket: Bucket, runs: Path, crashable: Server, busybox: str, home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TOOLSHIP_DATABASE__BUSY_TIMEOUT_SECONDS", "1")
    server = crashable.start()
    doc = {"executors": [{"image": busybox, "command": ["true"]}]}
    with session(server) as s:
        workload = submit_workload(s.client, busybox, bucket, runs, "lock")
        with locked(home / "toolship.db"):
            refused = s.http.post(f"{TES}/tasks", json=doc)
            assert refused.status_code == 503, refused.text
            detail = refused.json()["detail"]
            assert f"the database {home / 'toolship.db'} is busy: database is locked" in detail
            assert "fuser" in detail
            assert s.http.get(f"{TES}/tasks/{workload.ids[0]}").status_code == 200  # reads go on
            wait_for("the tasks' reports meeting the lock", lambda: reports_waiting(home))
        cleared = time.monotonic()
        assert s.http.post(f"{TES}/tasks", json=doc).status_code == 200
        check("SQLite locked", s.client, workload, bucket, runs, s.watch, cleared)
