"""GPUs on the real local executor, with an inventory of two listed (fake) devices.

The tool prints the devices it was given; the devices decide who runs: two
one-GPU tasks run at once on different devices, a third waits for one of
them, and a two-GPU task gets both.  (On Slurm: tests/integration/test_slurm.py.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from toolship import Client
from toolship.states import TaskState

DEVICES = [
    {"index": 0, "uuid": "GPU-00000000-fake-0000-0000-000000000000", "name": "Fake"},
    {"index": 1, "uuid": "GPU-11111111-fake-1111-1111-111111111111", "name": "Fake"},
]
UUIDS = [d["uuid"] for d in DEVICES]
# Prints what it sees, then holds its device until cancelled.
HOLD = ["sh", "-c", 'echo "[$CUDA_VISIBLE_DEVICES] [$NVIDIA_VISIBLE_DEVICES]"; exec sleep 600']
SHOW = ["sh", "-c", 'echo "[$CUDA_VISIBLE_DEVICES] [$NVIDIA_VISIBLE_DEVICES]"']


@pytest.fixture
def client(
    home: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Client]:
    monkeypatch.setenv("TOOLSHIP_LOCAL__GPU_DEVICES", json.dumps(DEVICES))
    monkeypatch.setenv("TOOLSHIP_LOCAL__CPUS", "8")  # the devices, not the cores, decide
    server = request.getfixturevalue("server")
    with Client(server.url, server.token) as c:
        yield c


def seen(client: Client, task_id: str, timeout: float = 60) -> str:
    """The first line the task printed (it prints at once), waiting for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = b"".join(client.logs(task_id)).decode()
        if text.endswith("\n"):
            return text.splitlines()[0]
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} printed nothing in {timeout}s: {client.get(task_id)}")


def state(client: Client, task_id: str) -> TaskState:
    return client.get(task_id).state


@pytest.mark.parametrize("runtime", ["process", "podman"])
def test_each_task_gets_its_own_gpus_and_a_third_waits_for_a_freed_one(
    client: Client, busybox: str, runtime: str
) -> None:
    a, b, c = (client.submit(busybox, HOLD, gpus=1, runtime=runtime).id for _ in range(3))
    first, second = seen(client, a), seen(client, b)
    mine = {first, second}
    assert mine == {f"[{u}] [{u}]" for u in UUIDS}, f"a and b share a device: {mine}"
    assert state(client, c) is TaskState.QUEUED, "both devices are taken: the third waits"

    client.cancel(a)
    assert seen(client, c) == first, "the third runs on the device the first gave back"
    client.cancel(b)
    client.cancel(c)
    for t in (a, b, c):
        assert client.wait(t, timeout=60) is TaskState.CANCELED

    both = client.run(busybox, SHOW, gpus=2, runtime=runtime)
    assert both.state is TaskState.COMPLETE
    assert both.logs() == f"[{','.join(UUIDS)}] [{','.join(UUIDS)}]\n"
    meta = both.info().logs[0].metadata
    assert meta["toolship.gpus"] == ",".join(UUIDS)
    assert float(meta["toolship.gpu_seconds"]) >= 0
    held = client.task(a).info().logs[0].metadata  # a cancelled attempt is recorded too
    assert held["toolship.gpus"] == first.split("]")[0].lstrip("[")

    none = client.run(busybox, SHOW, runtime=runtime)
    assert none.logs() == "[] [void]\n", "a task without GPUs sees none"
