"""The core issue's acceptance, through the SDK against a real server running real podman.

One suite for every backend: each test runs on the local executor and on the
local two-node Slurm cluster (``backend`` fixture), and must give the same
results; only tests about this machine's own capacity are local-only.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import leftover_containers
from toolship import Client
from toolship.errors import InvalidRequest
from toolship.states import TaskState
from toolship.supply.images import image_uses
from toolship.timeutil import parse_rfc3339


@pytest.fixture
def client(backend: str, server: Any) -> Iterator[Client]:
    with Client(server.url, server.token) as c:
        yield c


@pytest.fixture
def local_client(server: Any) -> Iterator[Client]:
    with Client(server.url, server.token) as c:
        yield c


def test_exit_code_and_both_streams(client: Client, busybox: str) -> None:
    task = client.run(busybox, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert task.state is TaskState.EXECUTOR_ERROR
    assert task.exit_codes == [3]
    assert task.logs() == "out\n"
    assert task.logs("stderr") == "err\n"
    assert task.info().logs[0].logs[0].stdout == "out\n"
    # What the attempt used, from its cgroup: on a Slurm node too (this cluster leaves
    # cgroups to others: proctrack/linuxproc, task/none).
    meta = task.info().logs[0].metadata or {}
    assert float(meta["toolship.cpu_seconds"]) > 0, meta
    assert int(meta["toolship.peak_memory_bytes"]) > 0, meta


def test_inputs_and_wildcard_outputs_land_owned_by_the_user(
    client: Client, busybox: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha\n")
    (data / "sub" / "b.txt").write_text("beta\n")
    results = tmp_path / "results"
    task = client.run(
        busybox,
        ["sh", "-c", "mkdir -p out/deep; cat in/a.txt in/sub/b.txt > out/both.txt; "
         "echo x > out/deep/x.txt; echo skip > out/skip.log"],
        inputs={"in": f"{data}/"},
        outputs={"out/*.txt": f"{results}/", "out/deep/*.txt": f"{results}/deep/"},
    )  # fmt: skip
    assert task.state is TaskState.COMPLETE, task.info()
    assert (results / "both.txt").read_text() == "alpha\nbeta\n"
    assert (results / "deep" / "x.txt").read_text() == "x\n"
    assert not (results / "skip.log").exists()
    assert (results / "both.txt").stat().st_uid == os.getuid()
    outputs = {o.path: o for o in task.outputs}
    assert outputs["/work/out/both.txt"].size_bytes == "11"
    assert outputs["/work/out/both.txt"].url == f"file://{results}/both.txt"
    # inputs are mounted read-only and never copied back out
    assert not any("/work/in" in p for p in outputs)


def test_inputs_are_read_only_in_the_container(
    client: Client, busybox: str, tmp_path: Path
) -> None:
    src = tmp_path / "keep.txt"
    src.write_text("original\n")
    task = client.run(
        busybox, ["sh", "-c", "echo changed > keep.txt"], inputs={"keep.txt": str(src)}
    )
    assert task.state is TaskState.EXECUTOR_ERROR
    assert "Read-only file system" in task.logs("stderr")
    assert src.read_text() == "original\n"


def test_tasks_wanting_every_core_run_one_after_the_other(
    local_client: Client, busybox: str
) -> None:
    client = local_client
    cores = os.cpu_count() or 1
    tasks = [client.submit(busybox, ["sleep", "1"], cpu=cores) for _ in range(2)]
    for t in tasks:
        assert t.wait(60) is TaskState.COMPLETE
    spans = []
    for t in tasks:
        ex = t.info().logs[0].logs[0]
        spans.append((parse_rfc3339(ex.start_time), parse_rfc3339(ex.end_time)))
    spans.sort()
    assert spans[0][1] <= spans[1][0], f"they overlapped: {spans}"


def test_more_cores_than_the_machine_is_refused(local_client: Client, busybox: str) -> None:
    with pytest.raises(InvalidRequest, match=r"1000 CPU cores.*offers"):
        local_client.submit(busybox, ["true"], cpu=1000)


def test_cancel_stops_a_running_container_quickly(
    backend: str, client: Client, busybox: str
) -> None:
    task = client.submit(busybox, ["sleep", "600"])
    deadline = time.monotonic() + 30
    while task.state is not TaskState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # let the container start for real
    started = time.monotonic()
    task.cancel()
    assert task.wait(10) is TaskState.CANCELED
    assert time.monotonic() - started < (5 if backend == "local" else 10)
    time.sleep(0.5)
    assert leftover_containers(task.id) == []


def test_timeout_kills_and_says_so(client: Client, busybox: str) -> None:
    started = time.monotonic()
    task = client.run(busybox, ["sleep", "60"], timeout="2s")
    assert time.monotonic() - started < 20
    assert task.state is TaskState.EXECUTOR_ERROR
    system = task.info().logs[0].system_logs
    assert any("timed out after 2s" in line for line in system), system


def test_out_of_memory_is_reported(client: Client, busybox: str) -> None:
    task = client.run(
        busybox, ["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"], memory="64M"
    )
    assert task.state is TaskState.EXECUTOR_ERROR
    system = " ".join(task.info().logs[0].system_logs)
    assert "out of memory" in system


def test_isolation_defaults(client: Client, busybox: str) -> None:
    script = (
        "id -u; ls /sys/class/net; "
        "touch /x 2>/dev/null && echo root-writable || echo root-readonly; "
        "echo hi > here.txt && echo workdir-writable"
    )
    task = client.run(busybox, ["sh", "-c", script])
    lines = task.logs().split()
    # A root server runs tasks as root of a user namespace (local.task_user on the host:
    # tests/security/test_task_user.py), others as themselves.
    assert lines[0] == ("0" if os.getuid() == 0 else str(os.getuid()))
    assert "eth0" not in lines and "lo" in lines
    assert "root-readonly" in lines and "workdir-writable" in lines
    networked = client.run(busybox, ["ls", "/sys/class/net"], network=True)
    assert len(networked.logs().split()) > 1


def test_missing_image_says_how_to_get_one(client: Client) -> None:
    task = client.run("localhost/toolship-no-such-image", ["true"])
    assert task.state is TaskState.SYSTEM_ERROR
    system = " ".join(task.info().logs[0].system_logs)
    assert "not available locally" in system and "podman build" in system


def test_missing_input_fails_before_running(client: Client, busybox: str, tmp_path: Path) -> None:
    task = client.run(busybox, ["cat", "x"], inputs={"x": str(tmp_path / "absent.txt")})
    assert task.state is TaskState.SYSTEM_ERROR
    assert task.info().logs[0].logs == []
    assert "does not exist" in " ".join(task.info().logs[0].system_logs)


def test_process_runtime_runs_on_the_host_and_says_so(
    client: Client, busybox: str, tmp_path: Path
) -> None:
    out = tmp_path / "p"
    task = client.run(
        busybox, ["sh", "-c", "echo $TOOLSHIP_TASK_ID > o.txt"], runtime="process",
        outputs={"o.txt": str(out)},
    )  # fmt: skip
    assert task.state is TaskState.COMPLETE
    assert out.read_text().strip() == task.id
    details = client.details(task.id)
    assert details.runtime == "process" and details.isolated is False


def test_executors_share_the_workdir_and_stop_at_the_first_failure(
    client: Client, busybox: str
) -> None:
    doc = {
        "executors": [
            {"image": busybox, "command": ["sh", "-c", "echo one > f"], "workdir": "/work"},
            {"image": busybox, "command": ["sh", "-c", "exit 4"], "workdir": "/work",
             "ignore_error": True},
            {"image": busybox, "command": ["sh", "-c", "cat f; exit 5"], "workdir": "/work"},
            {"image": busybox, "command": ["echo", "never"]},
        ]
    }  # fmt: skip
    task = client.create(doc)
    assert task.wait(60) is TaskState.EXECUTOR_ERROR
    assert task.exit_codes == [0, 4, 5]
    assert task.logs(executor=2) == "one\n"


def test_stdin_stdout_redirection(client: Client, busybox: str, tmp_path: Path) -> None:
    dest = tmp_path / "upper.txt"
    doc = {
        "inputs": [{"path": "/data/in.txt", "content": "hello\n"}],
        "outputs": [{"path": "/out/upper.txt", "url": f"file://{dest}"}],
        "executors": [
            {"image": busybox, "command": ["tr", "a-z", "A-Z"], "stdin": "/data/in.txt",
             "stdout": "/out/upper.txt"}
        ],
    }  # fmt: skip
    task = client.create(doc)
    assert task.wait(60) is TaskState.COMPLETE, task.info()
    assert dest.read_text() == "HELLO\n"


def test_no_container_is_left_behind(client: Client, busybox: str) -> None:
    task = client.run(busybox, ["true"])
    assert task.state is TaskState.COMPLETE
    assert leftover_containers(task.id) == []
    ps = subprocess.run(["podman", "ps", "-aq"], capture_output=True, text=True, check=True)
    assert ps.returncode == 0


def test_env_and_shared_volumes(client: Client, busybox: str) -> None:
    doc = {
        "volumes": ["/shared"],
        "executors": [
            {"image": busybox, "command": ["sh", "-c", "echo $GREETING > /shared/msg"],
             "env": {"GREETING": "hello from 0"}},
            {"image": busybox, "command": ["cat", "/shared/msg"]},
        ],
    }  # fmt: skip
    task = client.create(doc)
    assert task.wait(60) is TaskState.COMPLETE
    assert task.logs(executor=1) == "hello from 0\n"


def test_sdk_loop(client: Client, busybox: str) -> None:
    tasks = [
        client.submit(busybox, ["sh", "-c", f"echo $(({n} * {n}))"], name=f"square-{n}",
                      tags={"sweep": "squares"})
        for n in range(4)
    ]  # fmt: skip
    assert [t.wait(60) for t in tasks] == [TaskState.COMPLETE] * 4
    assert [t.logs().strip() for t in tasks] == ["0", "1", "4", "9"]
    listed = {t.id for t in client.tasks(tags={"sweep": "squares"}, page_size=2)}
    assert listed == {t.id for t in tasks}


# Two ranks meet at the main address and sum their values: an all-reduce over a socket
# (tests/e2e/test_example_ddp.py does the same with torch.distributed and gloo).
ALLREDUCE = """
import json, os, socket, time
rank, size = int(os.environ["TOOLSHIP_NODE_RANK"]), int(os.environ["TOOLSHIP_NUM_NODES"])
addr, port = os.environ["TOOLSHIP_MAIN_ADDR"], int(os.environ["MASTER_PORT"])
assert (os.environ["RANK"], os.environ["WORLD_SIZE"]) == (str(rank), str(size))
assert os.environ["MASTER_ADDR"] == addr
value = rank + 1
if rank == 0:
    server = socket.create_server(("0.0.0.0", port))
    peers = [server.accept()[0] for _ in range(size - 1)]
    total = value + sum(int(p.recv(64)) for p in peers)
    for p in peers:
        p.sendall(str(total).encode())
else:
    for _ in range(300):
        try:
            conn = socket.create_connection((addr, port))
            break
        except OSError:
            time.sleep(0.1)
    conn.sendall(str(value).encode())
    total = int(conn.recv(64))
print(json.dumps({"rank": rank, "size": size, "node": os.environ["TOOLSHIP_NODE_NAME"],
                  "addr": addr, "hosts": open(os.environ["TOOLSHIP_HOSTFILE"]).read().split(),
                  "sum": total}))
"""


def test_two_nodes_each_know_their_rank_and_all_reduce(
    backend: str, client: Client, python_image: str
) -> None:
    task = client.run(
        python_image, ["python3", "allreduce.py"], content={"allreduce.py": ALLREDUCE},
        nodes=2, timeout="2m",
    )  # fmt: skip
    assert task.state is TaskState.COMPLETE, task.info()
    rank0 = json.loads(task.logs())
    rank1 = json.loads(b"".join(client.logs(task.id, rank=1)))  # what --rank 1 prints
    with pytest.raises(InvalidRequest, match=f"rank must be between 0 and 1: task {task.id}"):
        b"".join(client.logs(task.id, rank=2))
    assert (rank0["rank"], rank1["rank"]) == (0, 1)
    assert rank0["size"] == rank1["size"] == 2
    assert rank0["sum"] == rank1["sum"] == 3
    assert rank0["addr"] == rank1["addr"] == "127.0.0.1"
    if backend == "slurm":
        assert (rank0["node"], rank1["node"]) == ("node1", "node2")
        assert rank0["hosts"] == ["node1", "node2"]
    else:
        assert rank0["hosts"] == ["localhost", "localhost"]
    # What an attached run prints (every rank, labelled) and what show lists.
    labelled = b"".join(client.logs(task.id, all_ranks=True)).decode().splitlines()
    assert sorted(labelled) == [f"{r}: {json.dumps(doc)}" for r, doc in enumerate((rank0, rank1))]
    ends = [(r.executor, r.rank, r.node, r.exit_code) for r in client.details(task.id).ranks]
    assert ends == [(0, 0, rank0["node"], 0), (0, 1, rank1["node"], 0)]


def test_a_failed_rank_fails_the_task_and_is_named_with_its_node(
    backend: str, client: Client, busybox: str
) -> None:
    task = client.run(
        busybox, ["sh", "-c", 'echo "up $RANK"; echo "down $RANK" >&2; exit $((RANK * 3))'],
        nodes=2, timeout="2m",
    )  # fmt: skip
    assert task.state is TaskState.EXECUTOR_ERROR, task.info()
    assert task.exit_codes == [3]
    assert sorted(b"".join(client.logs(task.id, all_ranks=True)).splitlines()) == [
        b"0: up 0", b"1: up 1"]  # fmt: skip
    stderr = b"".join(client.logs(task.id, stream="stderr", all_ranks=True))
    # (on Slurm, srun's own report of the failed rank comes on rank 0's stderr too)
    assert sorted(x for x in stderr.splitlines() if b"down" in x) == [b"0: down 0", b"1: down 1"]
    rank0, rank1 = client.details(task.id).ranks
    assert (rank1.rank, rank1.exit_code) == (1, 3)
    # Slurm ends the other ranks when one fails (srun --kill-on-bad-exit): rank 0 may be
    # killed before its wrapper records its end.
    assert rank0.exit_code == 0 if backend == "local" else rank0.exit_code in (0, None)
    if backend == "slurm":
        assert rank1.node == "node2"
        # Its wrapper names its node as it starts; only a rank stopped before even that
        # (srun ending it as rank 1 fails, on a loaded machine) has none.
        assert rank0.node == "node1" or (rank0.node, rank0.exit_code) == (None, None)


@pytest.fixture(scope="module")
def entrypoint_image(busybox: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image whose ENTRYPOINT is a shell, as images that wrap one tool have."""
    name = "localhost/toolship-test-entrypoint"
    context = tmp_path_factory.mktemp("entrypoint")
    (context / "Containerfile").write_text(f'FROM {busybox}\nENTRYPOINT ["sh"]\n')
    subprocess.run(
        ["podman", "build", "--quiet", "--network", "none", "-t", name, str(context)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return name


def test_the_images_entrypoint_runs_the_command_and_show_says_so(
    client: Client, entrypoint_image: str
) -> None:
    task = client.run(entrypoint_image, ["-c", "echo moo"])  # as `podman run IMAGE -c 'echo moo'`
    assert task.state is TaskState.COMPLETE, task.info().logs[-1]
    assert task.logs() == "moo\n"
    system = task.info().logs[-1].system_logs or []
    assert any(
        """ran the image's ENTRYPOINT ["sh"] with the command as its arguments: sh -c 'echo moo'"""
        in line
        for line in system
    ), system
    alone = client.run(entrypoint_image, ["echo", "alone"], params={"entrypoint": "command"})
    assert alone.state is TaskState.COMPLETE and alone.logs() == "alone\n"
    assert not any("ENTRYPOINT" in line for line in alone.info().logs[-1].system_logs or [])


def test_every_attempt_records_the_image_each_executor_ran(client: Client, busybox: str) -> None:
    """The manifest digest and image id, by executor: from the tag, and from a pinned name."""
    found = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Digest}} {{.Id}}", busybox],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    digest, image_id = found[0], "sha256:" + found[1]
    by_digest = f"{busybox.partition(':')[0]}@{digest}"
    task = client.create(
        {
            "executors": [
                {"image": busybox, "command": ["true"]},
                {"image": by_digest, "command": ["true"]},
            ]
        }
    )
    assert task.wait() is TaskState.COMPLETE, task.info().logs
    uses = image_uses(task.info().logs[-1].metadata)
    assert [(u.executor, u.image, u.digest, u.image_id) for u in uses] == [
        (0, busybox, digest, image_id),
        (1, by_digest, digest, image_id),
    ]


def test_a_tag_moved_between_tasks_is_recorded_as_the_new_image(
    client: Client, busybox: str, python_image: str
) -> None:
    """The server keeps what it inspected of an image only while podman's image store is
    unchanged: a tag re-pointed between two tasks is inspected again, never answered from
    memory."""

    def image_id(name: str) -> str:
        return "sha256:" + subprocess.run(
            ["podman", "image", "inspect", "--format", "{{.Id}}", name],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    tag = "localhost/toolship-moving-tag:test"
    try:
        recorded = []
        for target in (busybox, python_image, busybox):
            subprocess.run(["podman", "tag", target, tag], check=True)
            task = client.run(tag, ["true"])
            assert task.state is TaskState.COMPLETE, task.info().logs
            recorded.append(image_uses(task.info().logs[-1].metadata)[0].image_id)
        assert recorded == [image_id(busybox), image_id(python_image), image_id(busybox)]
    finally:
        subprocess.run(["podman", "rmi", "--ignore", tag], check=False, capture_output=True)
