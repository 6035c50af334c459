"""kill -9 of the server at each step of a task's life, then a restart on the same home.

The test-only hook (``TOOLSHIP_TEST_PAUSE_AT``, src/toolship/worker/testpoints.py)
freezes the server when the first attempt reaches the named point, so the kill lands
there and not at a moment a sleep hopes for; the rest of the workload is wherever it
happens to be.  The restarted server (without the hook) must finish every task as if
nothing had happened: each COMPLETE, each attempt run once, every output whole.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import read_when_written
from tests.resilience.harness import Bucket, Watch, check, crash, submit_workload
from tests.security.crashing import Server
from toolship import Client
from toolship.worker.testpoints import POINTS, VARIABLE


@pytest.mark.parametrize("point", POINTS)
def test_kill_9_at_each_step_loses_nothing(
    point: str,
    bucket: Bucket,
    runs: Path,
    crashable: Server,
    busybox: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "paused"
    monkeypatch.setenv(VARIABLE, f"{point}:{marker}")
    first = crashable.start()
    with Watch(lambda: crashable.url if crashable.current else None, lambda: first.token) as watch:
        with Client(first.url, first.token, timeout=30) as client:
            workload = submit_workload(client, busybox, bucket, runs, point)
        paused = read_when_written(marker, timeout=60)
        assert paused in workload.ids
        crash(crashable)
        monkeypatch.delenv(VARIABLE)
        again = crashable.start()
        cleared = time.monotonic()
        with Client(again.url, again.token, timeout=30) as client:
            check(f"kill -9 at {point}", client, workload, bucket, runs, watch, cleared)
