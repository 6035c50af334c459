"""The S3 server stopped during stage-in and during stage-out, then started again.

Every task may be retried after a system error.  While the store is down an attempt
that needs it ends SYSTEM_ERROR with a system log naming the transfer ("download of
s3://… failed: …", "upload to s3://… failed: …"); once it is back, the retries
complete.  A task whose retries ran out while it was down ends SYSTEM_ERROR saying so.
Never an output cut short.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import read_when_written
from tests.resilience.harness import (
    Bucket,
    Planned,
    check,
    session,
    submit_workload,
    system_logs,
)
from tests.security.crashing import Server, wait_for
from toolship import Client
from toolship.worker.testpoints import VARIABLE

RETRIES = 3


@pytest.fixture(autouse=True)
def one_transfer_try(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server tries each transfer once (storage.attempts): an attempt meets the outage
    in seconds rather than after a minute of back-off; the task's retries take over."""
    monkeypatch.setenv("TOOLSHIP_STORAGE__ATTEMPTS", "1")


S3_FAILED = re.compile(r"(download of|upload to) s3://\S+ failed: ")


def completed_or_named(_planned: Planned, task: dict[str, Any]) -> bool:
    """COMPLETE, or a system error whose log names the S3 transfer that failed."""
    if task["state"] == "COMPLETE":
        return True
    return task["state"] == "SYSTEM_ERROR" and bool(S3_FAILED.search(system_logs(task)))


def first_attempt_failed(client: Client, task_id: str, message: str) -> bool:
    """Attempt 1 of the task ended, with ``message`` in its system logs."""
    logs = client.get(task_id, view="FULL").logs or []
    return len(logs) > 1 and any(message in m for m in logs[0].system_logs or [])


def test_s3_down_during_stage_in(
    bucket: Bucket, runs: Path, crashable: Server, busybox: str
) -> None:
    server = crashable.start()
    with session(server) as s:
        bucket.stop()
        workload = submit_workload(s.client, busybox, bucket, runs, "in", retries=RETRIES)
        staged = workload.tasks["staged"]
        download = f"download of s3://{bucket.name}/in/data.bin failed: "
        wait_for("a failed download", lambda: first_attempt_failed(s.client, staged.id, download))
        bucket.start()
        outcome = check("S3 down during stage-in", s.client, workload, bucket, runs, s.watch,
                        time.monotonic(), completed_or_named)  # fmt: skip
    assert outcome.tasks["staged"]["state"] == "COMPLETE", system_logs(outcome.tasks["staged"])


def test_s3_down_during_stage_out(
    bucket: Bucket,
    runs: Path,
    crashable: Server,
    busybox: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The long task's executor, once ended, waits before its upload until the store is down.
    marker = tmp_path / "paused"
    monkeypatch.setenv(VARIABLE, f"exited@long:{marker}")
    server = crashable.start()
    with session(server) as s:
        workload = submit_workload(s.client, busybox, bucket, runs, "out", retries=RETRIES)
        long = workload.tasks["long"]
        assert read_when_written(marker) == long.id
        bucket.stop()
        marker.unlink()
        upload = f"upload to s3://{bucket.name}/{long.key} failed: "
        wait_for("a failed upload", lambda: first_attempt_failed(s.client, long.id, upload))
        bucket.start()
        outcome = check("S3 down during stage-out", s.client, workload, bucket, runs, s.watch,
                        time.monotonic(), completed_or_named)  # fmt: skip
    assert outcome.tasks["long"]["state"] == "COMPLETE", system_logs(outcome.tasks["long"])
