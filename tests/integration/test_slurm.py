"""What only the Slurm backend has: refusals from the cluster's shape, node failure, scale.

Against the real local two-node cluster (scripts/slurm-cluster.sh); nothing is faked.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    REGISTRY,
    ROOT,
    SLURM_DIR,
    leftover_containers,
    read_when_written,
    unique_name,
)
from tests.integration.servers import free_port
from toolship import Client
from toolship.errors import InvalidRequest
from toolship.secrets import ensure_secret, worker_token
from toolship.states import TaskState


@pytest.fixture
def slurm(slurm_cluster: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The server's environment for the Slurm backend, with every squeue call counted.

    Afterwards no job of the test cluster is left behind.
    """
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster))
    monkeypatch.setenv("TOOLSHIP_BACKEND", "slurm")
    monkeypatch.setenv("TOOLSHIP_SLURM__POLL_SECONDS", "1")
    # The catalog's registry: nodes pull the images pinned there by digest.
    monkeypatch.setenv("TOOLSHIP_IMAGES__REGISTRY", REGISTRY)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "squeue.calls"
    real = shutil.which("squeue")
    wrapper = bin_dir / "squeue"
    wrapper.write_text(f'#!/bin/sh\necho "$(date +%s.%N)" >> {calls}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    yield calls
    subprocess.run(["scancel", "--user", str(os.getuid())], check=False)


@pytest.fixture
def client(slurm: Path, server: Any) -> Iterator[Client]:
    with Client(server.url, server.token) as c:
        yield c


def test_what_no_partition_can_hold_is_refused_at_creation(client: Client, busybox: str) -> None:
    # The cluster's GPUs: two on node1 (fake devices, scripts/slurm-cluster.sh).
    with pytest.raises(InvalidRequest, match=r"3 GPUs each \(debug: .* 2 GPUs\)"):
        client.submit(busybox, ["nvidia-smi"], gpus=3)
    with pytest.raises(InvalidRequest, match="partition 'gpu' does not exist"):
        client.submit(busybox, ["true"], params={"partition": "gpu"})
    with pytest.raises(InvalidRequest, match=r"3 node\(s\)"):
        client.submit(busybox, ["true"], nodes=3)


@pytest.fixture
def meeting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder every container sees (local.shared_dirs), where concurrent tasks meet."""
    # Not under tmp_path: tasks run as local.task_user, who cannot enter pytest's folders.
    folder = Path(tempfile.mkdtemp(prefix="toolship-meet-"))
    folder.chmod(0o777)
    monkeypatch.setenv("TOOLSHIP_LOCAL__SHARED_DIRS", json.dumps([str(folder)]))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_gpu_tasks_get_the_devices_slurm_allotted_and_no_others(
    meeting: Path, client: Client, busybox: str
) -> None:
    # Each one-GPU task waits in the meeting folder until the other runs too, so both
    # hold a device at once: Slurm must give them different ones.
    show = 'echo "cuda=$CUDA_VISIBLE_DEVICES slurm=$SLURM_JOB_GPUS toolship=$TOOLSHIP_GPUS"'
    meet = (
        f"touch {meeting}/$ME; n=0; "
        f"until [ -e {meeting}/a ] && [ -e {meeting}/b ]; do "
        "n=$((n+1)); [ $n -lt 1200 ] || exit 9; sleep 0.05; done; "
    )
    pair = [client.submit(busybox, ["sh", "-c", meet + show], gpus=1, env={"ME": me})
            for me in ("a", "b")]  # fmt: skip
    for task in pair:
        assert task.wait(120) is TaskState.COMPLETE, task.info().logs[-1].system_logs
    seen = sorted(task.logs() for task in pair)
    # Slurm's host indexes; SLURM_JOB_GPUS stays outside the container.
    assert seen == ["cuda=0 slurm= toolship=0\n", "cuda=1 slurm= toolship=1\n"], seen
    assert sorted(t.info().logs[-1].metadata["toolship.gpus"] for t in pair) == ["0", "1"]
    both = client.submit(busybox, ["sh", "-c", show], gpus=2)
    assert both.wait(120) is TaskState.COMPLETE, both.info().logs[-1].system_logs
    assert both.logs() == "cuda=0,1 slurm= toolship=0,1\n"
    assert both.info().logs[-1].metadata["toolship.gpus"] == "0,1"
    # The process runtime runs in the job, with Slurm's own variables and CUDA's numbering.
    host = client.submit("none", ["sh", "-c", show], gpus=1, params={"runtime": "process"})
    assert host.wait(120) is TaskState.COMPLETE, host.info().logs[-1].system_logs
    device = host.info().logs[-1].metadata["toolship.gpus"]
    assert host.logs() == f"cuda={device} slurm={device} toolship={device}\n"


def _node_of(task_id: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["squeue", "--noheader", f"--name=toolship-{task_id}", "--states=RUNNING",
             "--format=%N"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        if out:
            return out
        time.sleep(0.3)
    raise AssertionError(f"task {task_id} never ran")


def _restart_nodes() -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "slurm-cluster.sh"), "start"],
        env={**os.environ, "TOOLSHIP_SLURM_DIR": str(SLURM_DIR)}, check=True,
        capture_output=True,
    )  # fmt: skip


def test_a_killed_node_ends_its_task_naming_the_node_and_spares_the_other(
    client: Client, busybox: str
) -> None:
    # Each task takes a whole node (2 cores), so they land on different nodes.
    doomed = client.submit(busybox, ["sleep", "60"], cpu=2)
    survivor = client.submit(busybox, ["sh", "-c", "sleep 25; echo survived"], cpu=2)
    node = _node_of(doomed.id)
    other = _node_of(survivor.id)
    assert node != other
    pid = int((SLURM_DIR / "run" / f"slurmd-{node}.pid").read_text())
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    try:
        assert doomed.wait(60) is TaskState.SYSTEM_ERROR
        took = time.monotonic() - killed
        system = " ".join(doomed.info().logs[-1].system_logs)
        assert node in system and "NODE_FAIL" in system, system
        assert took < 45, f"noticed after {took:.0f} s"  # SlurmdTimeout=10 s, + polling
        assert survivor.wait(120) is TaskState.COMPLETE
        assert survivor.logs() == "survived\n"
    finally:
        _restart_nodes()
    # The doomed task's worker still ran on the "dead" node: the server told it to stop.
    time.sleep(3)
    assert leftover_containers(doomed.id) == []


def test_a_worker_killed_outright_leaves_no_container_behind(client: Client, busybox: str) -> None:
    # SIGKILL gives the worker no chance to stop its container (as when KillWait runs out
    # on a busy node); the node epilog (scripts/slurm-epilog.sh) removes it.
    task = client.submit(busybox, ["sleep", "300"])
    deadline = time.monotonic() + 60
    while not leftover_containers(task.id) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert leftover_containers(task.id), "the task's container never started"
    job_id = subprocess.run(
        ["squeue", "--noheader", f"--name=toolship-{task.id}", "--format=%i"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    worker = subprocess.run(
        ["pgrep", "-f", f"toolship.worker --server .* --task {task.id}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(worker) == 1, worker
    os.kill(int(worker[0]), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while leftover_containers(task.id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert leftover_containers(task.id) == []
    assert task.wait(60) is TaskState.SYSTEM_ERROR
    system = " ".join(task.info().logs[-1].system_logs)
    assert f"Slurm job {job_id}" in system and "without its worker reporting" in system, system


@pytest.mark.timeout(1800)
def test_many_tasks_at_once_all_complete_with_one_squeue_per_tick(
    client: Client, slurm: Path
) -> None:
    # 100 keeps CI well under its budget (the cluster starts ~2 jobs/s, raw sbatch ~3/s);
    # the 500 at once: TOOLSHIP_SLURM_MANY=500 (238-390 s here, all COMPLETE).
    count = int(os.environ.get("TOOLSHIP_SLURM_MANY", "100"))
    started = time.monotonic()
    tasks = [
        client.create({
            "name": f"many-{i}",
            "executors": [{"image": "none", "command": ["true"]}],
            "resources": {"backend_parameters": {"runtime": "process"}},
        })
        for i in range(count)
    ]  # fmt: skip
    deadline = time.monotonic() + 1800
    for t in tasks:
        assert t.wait(max(1.0, deadline - time.monotonic())) is TaskState.COMPLETE, t.info()
    elapsed = time.monotonic() - started
    calls = len(slurm.read_text().splitlines())
    ticks = elapsed / 1.0  # TOOLSHIP_SLURM__POLL_SECONDS
    print(f"{count} tasks in {elapsed:.0f} s; squeue called {calls} times in {ticks:.0f} ticks")
    assert calls <= ticks + 2


def _serve(home: Path, port: int, path: str | None = None) -> subprocess.Popen[bytes]:
    """A `toolship serve --backend slurm` on a fixed port (nodes keep reaching it there)."""
    with (home / "server.log").open("ab") as log:  # the server keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "toolship", "serve", "--backend", "slurm", "--port", str(port)],
            env={**os.environ, "TOOLSHIP_HOME": str(home),
                 "TOOLSHIP_SERVER__TOKEN_FILE": str(home / "tokens"),
                 "PATH": path or os.environ["PATH"]},
            stdout=log, stderr=log,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start: {(home / 'server.log').read_text()}")


def test_a_server_killed_mid_task_finds_its_jobs_again_and_runs_none_twice(
    slurm: Path, home: Path, busybox: str, tmp_path: Path
) -> None:
    (home / "tokens").write_text("secret-token\n")
    port = free_port()
    proc = _serve(home, port)
    out = tmp_path / "out"
    try:
        with Client(f"http://127.0.0.1:{port}", "secret-token") as client:
            running = client.submit(
                busybox, ["sh", "-c", "echo started; sleep 6; echo finished > done.txt"],
                outputs={"done.txt": f"{out}/done.txt"},
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while running.state is not TaskState.RUNNING and time.monotonic() < deadline:
                time.sleep(0.2)
            # submitted while the server is down: found by its job id, not submitted again
            queued = client.submit(busybox, ["echo", "queued"])
            time.sleep(0.5)
            proc.kill()
            proc.wait()
            time.sleep(3)  # the worker's reports fail meanwhile; it retries
            proc = _serve(home, port)
            assert running.wait(120) is TaskState.COMPLETE, running.info()
            assert queued.wait(120) is TaskState.COMPLETE, queued.info()
            assert (out / "done.txt").read_text() == "finished\n"
            assert running.logs() == "started\n"
            for task in (running, queued):
                info = task.info()
                assert len(info.logs) == 1 and len(info.logs[0].logs) == 1
                jobs = [s for s in info.logs[0].system_logs if "submitted to Slurm" in s]
                assert len(jobs) == 1, info.logs[0].system_logs
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_server_killed_right_after_sbatch_finds_the_job_and_does_not_submit_again(
    slurm: Path, home: Path, busybox: str, tmp_path: Path
) -> None:
    # An sbatch that kills the server as soon as Slurm has the job: the job id is never
    # recorded. The restarted server must find the job by its comment, not submit anew.
    crash = tmp_path / "crash"
    crash.mkdir()
    (crash / "sbatch").write_text(
        f'#!/bin/sh\n{shutil.which("sbatch")} "$@"; code=$?; kill -9 $PPID; exit $code\n'
    )
    (crash / "sbatch").chmod(0o755)
    (home / "tokens").write_text("secret-token\n")
    port = free_port()
    proc = _serve(home, port, path=f"{crash}:{os.environ['PATH']}")
    try:
        with Client(f"http://127.0.0.1:{port}", "secret-token") as client:
            task = client.submit(busybox, ["sh", "-c", "sleep 3; echo once"])
            assert proc.wait(30) == -signal.SIGKILL
            proc = _serve(home, port)
            assert task.wait(120) is TaskState.COMPLETE, task.info()
            assert task.logs() == "once\n"
            system = task.info().logs[0].system_logs
            assert not [s for s in system if "submitted to Slurm" in s], system
            assert [s for s in system if "not submitting it again" in s], system
        jobs = subprocess.run(
            ["squeue", "--noheader", "--states=all", f"--name=toolship-{task.id}", "--format=%i"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert len(jobs) == 1, jobs
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_worker_token_opens_its_own_task_only(client: Client, server: Any, busybox: str) -> None:
    task = client.submit(busybox, ["sleep", "30"])
    other = client.submit(busybox, ["sleep", "30"])
    token = read_when_written(server.home / "tasks" / task.id / "worker.token").strip()
    assert token == worker_token(ensure_secret(server.home / "worker.secret"), task.id)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job = http.get(f"/api/v1/worker/tasks/{task.id}", headers=auth)
        assert job.status_code == 200 and job.json()["task_id"] == task.id
        assert http.get(f"/api/v1/worker/tasks/{other.id}", headers=auth).status_code == 401
        assert http.get(f"/api/v1/worker/tasks/{task.id}").status_code == 401
        # the user's token is no worker token either
        user = {"Authorization": f"Bearer {server.token}"}
        assert http.get(f"/api/v1/worker/tasks/{task.id}", headers=user).status_code == 401
    task.cancel()
    other.cancel()
    assert task.wait(30) is TaskState.CANCELED
    with httpx.Client(base_url=server.url, timeout=30) as http:
        late = http.post(
            f"/api/v1/worker/tasks/{task.id}/report", headers=auth,
            json={"state": "COMPLETE", "attempt": {}, "runtime": {}},
        )  # fmt: skip
        assert late.status_code == 409  # the attempt is over: the worker must stop


def test_a_service_in_the_registry_runs_on_a_node_that_pulls_it_by_digest(
    client: Client, busybox: str, registry: str, tmp_path: Path
) -> None:
    repository = f"{registry}/{unique_name('slurm-service')}"
    (tmp_path / "Containerfile").write_text(
        f"FROM {busybox}\n"
        'LABEL "eudat.gef.service.name"="'
        f'{repository.rpartition("/")[2]}" "eudat.gef.service.version"="1"\n'
        'CMD ["echo", "pulled by digest"]\n'
    )
    podman = ["podman", "build", "--network=none", "--pull=never", "-q", "-t", f"{repository}:1"]
    subprocess.run([*podman, str(tmp_path)], check=True, capture_output=True)
    subprocess.run(["podman", "push", "-q", f"{repository}:1"], check=True, capture_output=True)
    subprocess.run(["podman", "rmi", f"{repository}:1"], check=True, capture_output=True)
    version = client.register_service(f"{repository}:1")
    assert version.image.startswith(f"{repository}@sha256:")
    try:
        for _ in range(2):  # cold: the node pulls the digest; warm: it reuses its copy
            task = client.run_service(version.name)
            assert task.wait(120) is TaskState.COMPLETE, task.info().logs[-1].system_logs
            assert task.logs() == "pulled by digest\n"
            assert task.info().executors[0].image == version.image
        exists = subprocess.run(["podman", "image", "exists", version.image], check=False)
        assert exists.returncode == 0
    finally:
        subprocess.run(["podman", "rmi", "-f", version.image], check=False, capture_output=True)
