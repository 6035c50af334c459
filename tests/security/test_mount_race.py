"""The path that is mounted (or copied) is the path that was checked.

A thread swaps a directory on the input's path for a symlink to a directory
outside the allowed roots, again and again, while 30 tasks read the input.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolship import Client, InvalidRequest, TaskState


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, server.token, timeout=120) as c:
        yield c


@pytest.fixture
def outside() -> Iterator[Path]:
    """A directory outside the allowed roots ($HOME and /tmp) holding a file of the same name."""
    folder = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="toolship-outside-"))
    (folder / "f.txt").write_text("OUTSIDE\n")
    yield folder
    shutil.rmtree(folder)


class Swapper:
    """Swaps ``data`` (a directory) and a symlink to ``target`` until stopped."""

    def __init__(self, data: Path, target: Path) -> None:
        self.data, self.target = data, target
        self.real = data.with_name(data.name + ".real")
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.swaps = 0

    def _loop(self) -> None:
        while not self.stopping.is_set():
            os.rename(self.data, self.real)
            os.symlink(self.target, self.data)
            time.sleep(0.002)
            os.unlink(self.data)
            os.rename(self.real, self.data)
            self.swaps += 1
            time.sleep(0.002)

    def __enter__(self) -> Swapper:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)


def stdout(task: Any) -> str:
    """What the executor printed, as the task record keeps it ("" if it never ran)."""
    executors = task.info().logs[-1].logs
    return executors[0].stdout or "" if executors else ""


def submit_despite_the_swaps(client: Client, busybox: str, **kwargs: Any) -> Any:
    """Creation checks the path too: a request that happens to see the symlink is a 400."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return client.submit(busybox, ["cat", "in/f.txt"], **kwargs)
        except InvalidRequest:
            if time.monotonic() > deadline:
                raise


@pytest.mark.parametrize(
    "how", ["file", "directory", "copied file"], ids=["file", "directory", "copy"]
)
def test_a_swapped_directory_never_shows_a_file_outside_the_roots(
    how: str, client: Client, busybox: str, tmp_path: Path, outside: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_text("inside\n")
    if how == "directory":
        kwargs: dict[str, Any] = {"inputs": {"in": f"{data}/"}}
    else:
        kwargs = {"inputs": {"in/f.txt": f"{data}/f.txt"}}
    kwargs["writable_inputs"] = how == "copied file"
    tasks = []
    with Swapper(data, outside) as swapper:
        for _ in range(30):
            tasks.append(submit_despite_the_swaps(client, busybox, **kwargs))
        for task in tasks:
            task.wait(120)
    assert swapper.swaps > 30
    seen = {task.id: stdout(task) for task in tasks}
    leaked = [tid for tid, out in seen.items() if "OUTSIDE" in out]
    assert leaked == [], f"{len(leaked)} of 30 tasks read a file outside the allowed roots"
    for task in tasks:
        if task.state is TaskState.COMPLETE:
            assert seen[task.id] == "inside\n", seen[task.id]
        else:
            logs = " ".join(task.info().logs[-1].system_logs or [])
            why = ("symlink", "allowed roots", "does not exist", "changed while")
            assert any(w in logs for w in why), logs
    # The input itself works: once the swaps stop, a task reads it.  (Under the swaps any
    # number of the 30, all of them included, may meet the symlink and be refused: right,
    # and a matter of timing, so not what this test counts on.)
    after = client.submit(busybox, ["cat", "in/f.txt"], **kwargs)
    assert after.wait(120) is TaskState.COMPLETE, after.info().logs
    assert stdout(after) == "inside\n"
    tasks.append(after)
    attempt_dirs = [client.details(task.id).attempt_dir for task in tasks]
    mounts = Path("/proc/self/mountinfo").read_text()
    assert not any(d in mounts for d in attempt_dirs), "an input stayed mounted after its task"
