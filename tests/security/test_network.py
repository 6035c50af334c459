"""Multi-node ranks on one machine talk over a private network, never the host's.

An attacker's ``nodes: 2`` task on the local backend used to get ``--network host``
and reached the server's own loopback API (and anything else listening on the
host's loopback).  The ranks of one task now share a network namespace of their
own (a podman pod per executor): they reach each other at 127.0.0.1 and nothing
of the host.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from toolship import Client
from toolship.runtime import ExecSpec
from toolship.runtime.container import ContainerRuntime
from toolship.states import TaskState
from toolship.worker.ranks import local_ranks

# Each rank probes the host's loopback ports, then the ranks meet at MASTER_ADDR: rank 1
# sends its findings to rank 0, which prints both (rank 1's own log file is not needed).
PROBE = """
import json, os, socket, time
rank = int(os.environ["TOOLSHIP_NODE_RANK"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])

def reach(p):
    try:
        with socket.create_connection(("127.0.0.1", p), timeout=2):
            return True
    except OSError:
        return False

mine = {"rank": rank, "reached": [p for p in map(int, os.environ["PROBE"].split(",")) if reach(p)]}
if rank == 0:
    server = socket.create_server(("127.0.0.1", port))
    conn = server.accept()[0]
    peer = json.loads(conn.makefile().readline())
    conn.sendall(b"ok\\n")
    print(json.dumps({"addr": addr, "ranks": [mine, peer]}))
else:
    for _ in range(600):
        try:
            conn = socket.create_connection((addr, port))
            break
        except OSError:
            time.sleep(0.1)
    conn.sendall((json.dumps(mine) + "\\n").encode())
    assert conn.makefile().readline() == "ok\\n"
"""


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, server.token, timeout=120) as c:
        yield c


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Another service on the host's loopback that no task may reach."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def _pods(task_id: str) -> list[str]:
    out = subprocess.run(
        ["podman", "pod", "ps", "--filter", f"label=io.toolship.task={task_id}",
         "--format", "{{.Name}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.split()


def _containers(task_id: str) -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=io.toolship.task={task_id}",
         "--format", "{{.Names}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.split()


def _until(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f}s")


def test_local_ranks_reach_each_other_but_not_the_hosts_loopback(
    server: Any, client: Client, python_image: str, listener: socket.socket
) -> None:
    api_port = urlsplit(server.url).port
    task = client.run(
        python_image, ["python3", "probe.py"], content={"probe.py": PROBE}, nodes=2,
        env={"PROBE": f"{api_port},{listener.getsockname()[1]}"}, timeout="2m",
    )  # fmt: skip
    assert task.state is TaskState.COMPLETE, task.info()
    found = json.loads(task.logs())
    assert found["addr"] == "127.0.0.1"  # rank 0, inside the ranks' own namespace
    assert [r["rank"] for r in found["ranks"]] == [0, 1]
    for rank in found["ranks"]:
        assert rank["reached"] == [], f"rank {rank['rank']} reached the host's loopback"
    with pytest.raises(BlockingIOError):
        listener.accept()  # no connection ever arrived
    _until(lambda: not _pods(task.id), "the ranks' pod is removed")
    assert _containers(task.id) == []


def test_a_cancelled_multi_node_task_leaves_no_pod_or_container(
    server: Any, client: Client, busybox: str
) -> None:
    task = client.submit(busybox, ["sleep", "300"], nodes=2)
    _until(lambda: len(_containers(task.id)) >= 3, "both ranks (and the pod) run")
    assert len(_pods(task.id)) == 1
    task.cancel()
    assert task.wait(60) is TaskState.CANCELED
    _until(lambda: not _pods(task.id) and not _containers(task.id), "everything is removed")


def test_local_ranks_share_a_pod_and_never_get_the_host_network() -> None:
    ranks = local_ranks(2)
    assert not ranks.host_network
    assert ranks.main_addr == "127.0.0.1"
    spec = ExecSpec(
        name="toolship-t1-1-0", task_id="t1", image="img", command=("true",), workdir=None,
        env={}, mounts=(), root=Path("/nonexistent"), pod="toolship-t1-1-0-pod",
    )  # fmt: skip
    for rootless in (False, True):
        argv = ContainerRuntime("podman", rootless=rootless).command(spec)
        assert argv[argv.index("--pod") + 1] == "toolship-t1-1-0-pod"
        assert "--network" not in argv  # the pod's namespace decides, not the container
        assert "--userns" not in argv  # set on the pod (rootless), not per container


def test_the_pod_reaches_outside_only_when_the_task_asks_for_a_network() -> None:
    rt = ContainerRuntime("podman", rootless=False)
    spec = ExecSpec(
        name="c", task_id="t1", image="img", command=("true",), workdir=None, env={},
        mounts=(), root=Path("/nonexistent"), pod="c-pod", labels={"k": "v"},
    )  # fmt: skip
    (create,) = rt.pod_commands(spec)
    assert create[:3] == ["podman", "pod", "create"]
    assert create[create.index("--network") + 1] == "none"
    assert "io.toolship.task=t1" in create and "k=v" in create
    from dataclasses import replace

    (create,) = rt.pod_commands(replace(spec, network=True))
    assert create[create.index("--network") + 1] == "bridge"
    assert rt.remove_pod_commands("c-pod") == [
        ["podman", "pod", "rm", "--force", "--ignore", "c-pod"]
    ]


def test_slurm_ranks_span_hosts_and_use_the_host_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolship.worker import ranks as module

    monkeypatch.setenv("SLURM_JOB_NODELIST", "node[1-2]")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    answers = {"hostnames": "node1\nnode2\n", "node": "NodeName=node1 NodeAddr=10.0.0.1\n"}
    monkeypatch.setattr(module, "_scontrol", lambda *args: answers[args[1]])
    ranks = module.slurm_ranks(2)
    assert ranks.host_network  # refused at admission unless policy.host_network allows it
    assert ranks.main_addr == "10.0.0.1"
