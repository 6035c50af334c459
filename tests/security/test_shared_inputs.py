"""Inputs in the shared dirs are written in place only inside local.writable_shared_dirs.

Real podman, a real root server: one task names three directory inputs, all in
``local.shared_dirs`` (which every container sees read-write at its own path),
and tries to write into each.  Only the one inside ``local.writable_shared_dirs``
takes the write (as Toil's file job store needs); the others stay read-only,
among them a symlink in the writable dir that leads out of it, and the task's
system log says which setting would let it write there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolship import Client, TaskState

SCRIPT = """
for d in "$@"; do
    if echo task > "$d/written.txt" 2>/dev/null; then echo "$d writable"
    else echo "$d read-only"; fi
done
"""


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """shared/ with jobs/ (writable inputs) and reference/ in it, outside/ beside it."""
    for name in ("shared/jobs/store", "shared/reference", "outside"):
        folder = tmp_path / name
        folder.mkdir(parents=True)
        folder.chmod(0o777)  # whoever the task runs as, only the mount decides
    (tmp_path / "shared" / "jobs" / "escape").symlink_to(tmp_path / "outside")
    monkeypatch.setenv("TOOLSHIP_LOCAL__SHARED_DIRS", json.dumps([str(tmp_path / "shared")]))
    monkeypatch.setenv(
        "TOOLSHIP_LOCAL__WRITABLE_SHARED_DIRS", json.dumps([str(tmp_path / "shared" / "jobs")])
    )
    return tmp_path / "shared"


@pytest.fixture
def client(shared: Path, server: Any) -> Iterator[Client]:
    with Client(server.url, server.token, timeout=120) as c:
        yield c


def test_only_inputs_inside_the_writable_shared_dirs_take_writes(
    shared: Path, client: Client, busybox: str
) -> None:
    store, reference = shared / "jobs" / "store", shared / "reference"
    escape, outside = shared / "jobs" / "escape", shared.parent / "outside"
    inputs = [
        (store, str(store)),  # at its own path, as Toil passes its job store
        (reference, str(reference)),  # in a shared dir, not a writable one
        (escape, "/escape"),  # a link in the writable dir, leading out of it
    ]
    task = client.create(
        {
            "executors": [
                {"image": busybox, "command": ["sh", "-c", SCRIPT, "sh", *[p for _, p in inputs]]}
            ],
            "inputs": [
                {"url": f"file://{url}", "path": path, "type": "DIRECTORY"} for url, path in inputs
            ],
        }
    )
    assert task.wait(timeout=120) is TaskState.COMPLETE, task.logs("stderr")
    assert task.logs().splitlines() == [
        f"{store} writable",
        f"{reference} read-only",
        "/escape read-only",
    ]
    assert (store / "written.txt").read_text() == "task\n"
    assert not (reference / "written.txt").exists()
    assert not (outside / "written.txt").exists()
    system_logs = task.info().logs[-1].system_logs or []
    (note,) = [line for line in system_logs if "local.writable_shared_dirs" in line]
    assert note.startswith(f"input {reference} is mounted read-only although it lies in")
    assert os.listdir(outside) == []
