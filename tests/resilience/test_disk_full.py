"""The work directory's file system full: a small tmpfs mounted as the server's work folder.

A filler file leaves room for the workload's outputs but not for the staged task's
1 MiB input.  That task ends SYSTEM_ERROR with a system log that starts "disk full in
<the work folder>" and says what to do; nothing partial is uploaded; every other task
completes.  Once the filler is gone, the same staged task completes.  Tasks run one at
a time (local.cpus = 1): a download filling the disk while another task writes its
output would fail that one too, at a moment no test can choose.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.resilience.harness import (
    INPUT,
    Bucket,
    Planned,
    check,
    session,
    submit_workload,
    system_logs,
    untroubled,
    wait_final,
)
from tests.security.crashing import Server

ROOM = 900 * 1024  # free bytes left: the outputs fit (64 KiB each), the 1 MiB input does not


@contextmanager
def small_file_system(folder: Path, size: str) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                   check=True)  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_work_directory_full(
    bucket: Bucket, runs: Path, crashable: Server, busybox: str, home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TOOLSHIP_LOCAL__CPUS", "1")
    work = home / "tasks"
    with small_file_system(work, "4m"):
        filler = work / "filler"
        filler.write_bytes(b"\0" * (shutil.disk_usage(work).free - ROOM))
        server = crashable.start()
        full = f"disk full in {work} ("

        def allowed(planned: Planned, task: dict[str, Any]) -> bool:
            if planned.name == "staged":
                return task["state"] == "SYSTEM_ERROR" and full in system_logs(task)
            return untroubled(planned, task)

        with session(server) as s:
            workload = submit_workload(s.client, busybox, bucket, runs, "full")
            staged = workload.tasks["staged"]
            wait_final(s.client, [staged.id])
            filler.unlink()
            cleared = time.monotonic()
            check("disk full", s.client, workload, bucket, runs, s.watch, cleared, allowed)
            again = s.client.submit(
                busybox, ["sh", "-c", "mkdir -p /work/out; cp /work/in/data.bin /work/out/result"],
                inputs={"/work/in/data.bin": f"s3://{bucket.name}/in/data.bin"},
                outputs={"/work/out/result": f"s3://{bucket.name}/full/again/result"},
            )  # fmt: skip
            done = wait_final(s.client, [again.id])[again.id]
            assert done["state"] == "COMPLETE", system_logs(done)
            assert bucket.read("full/again/result") == INPUT
