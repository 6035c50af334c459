"""Batch semantics against a real server: sweeps in containers, map/reduce over S3, retries
of real processes, the accounting report, and a server killed mid-batch.

Dependencies, max-parallel, batch timeouts, cancel-all and bad retry options are API
contract tests, in process with the fake backend: tests/api/test_batches.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import toolship as run_cli
from tests.integration.conftest import S3
from tests.security.crashing import wait_for
from toolship import Client, TaskState
from toolship.models import BatchMap, ExecutorLog, TaskView
from toolship.timeutil import parse_rfc3339


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, server.token, timeout=120) as c:
        yield c


def toolship(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=300)  # sweeps of 100 tasks and restarts take a while


def peak_running(spans: list[tuple[Any, Any]]) -> int:
    """The most (start, end) spans open at one moment (an end sorts before a start at a tie)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def members(client: Client, batch_id: str) -> list[TaskView]:
    """Member tasks (FULL view) in creation order."""
    return sorted(client.tasks(batch=batch_id, view="FULL"), key=lambda t: t.creation_time or "")


def span(log: ExecutorLog) -> tuple[datetime, datetime]:
    return parse_rfc3339(log.start_time or ""), parse_rfc3339(log.end_time or "")


def stdout_of(task: TaskView) -> str:
    return "".join(e.stdout or "" for e in (task.logs or [])[-1].logs)


def test_grid_sweep_runs_every_combination_with_its_values(
    server: Any, client: Client, busybox: str
) -> None:
    batch = client.sweep(
        busybox,
        ["sh", "-c", "echo lr={lr} width={width} $TOOLSHIP_ARRAY_INDEX/$TOOLSHIP_ARRAY_SIZE $W"],
        {"lr": ["0.1", "0.01", "0.001"], "width": ["100", "200"]},
        env={"W": "w{width}"},
        name="train-{lr}-{width}",
    )
    info = batch.wait(timeout=240)
    assert info.state == "COMPLETE" and info.counts == {"COMPLETE": 6}, info
    got = {t.name: stdout_of(t).strip() for t in members(client, batch.id)}
    assert got == {
        f"train-{lr}-{w}": f"lr={lr} width={w} {i}/6 w{w}"
        for i, (lr, w) in enumerate(
            (lr, w) for lr in ("0.1", "0.01", "0.001") for w in ("100", "200")
        )
    }
    # Members are ordinary TES tasks, tagged with their batch.
    for t in members(client, batch.id):
        assert (t.tags or {})["toolship.batch"] == batch.id


def test_params_file_sweep_of_100_rows_and_ps_by_batch(cli_env: Path, tmp_path: Path) -> None:
    rows = tmp_path / "params.csv"
    rows.write_text("name,n\n" + "".join(f"run{i},{i * i}\n" for i in range(100)))
    done = toolship(
        "sweep", "--params-file", str(rows), "--runtime", "process", "--batch-name", "squares",
        "--name", "{name}", "localhost/toolship-busybox", "--", "sh", "-c", "echo {n}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "COMPLETE 100" in done.stdout, done.stdout
    batch_id = done.stdout.split()[1]
    listing = toolship("ps", "--batch", batch_id)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0] == f"batch {batch_id} (sweep, 100 tasks): COMPLETE"
    assert lines[1].split() == ["COMPLETE", "100"]
    assert sum(" run" in line for line in lines) == 100
    with Client() as c:
        outs = {t.name: stdout_of(t).strip() for t in c.tasks(batch=batch_id, view="FULL")}
    assert outs == {f"run{i}": str(i * i) for i in range(100)}


@pytest.fixture
def host_tasks_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Process tasks here write to the test's own (root-only) folder on the host: the
    operator's explicit choice local.task_user = "0:0".  List it before ``server``."""
    monkeypatch.setenv("TOOLSHIP_LOCAL__TASK_USER", "0:0")


@pytest.fixture
def cli_env(home: Path, busybox: str) -> Iterator[Path]:
    from toolship.embedded import stop_server

    yield home
    stop_server(home)


def test_map_over_an_s3_prefix_in_chunks_then_reduce(
    s3: S3, server: Any, client: Client, busybox: str
) -> None:
    bucket = s3.client()
    bucket.create_bucket(Bucket="raw")
    for i in range(50):
        bucket.put_object(Bucket="raw", Key=f"traces/t{i:02d}.segy", Body=f"trace {i}\n".encode())
    bucket.put_object(Bucket="raw", Key="traces/notes.txt", Body=b"not matched")
    batch = client.map(
        busybox,
        ["sh", "-c", "cat {inputs} | wc -l > /work/out/lines.txt; echo $TOOLSHIP_MAP_ITEM"],
        over="s3://raw/traces/*.segy",
        to="s3://raw/index/",
        chunk=5,
        reduce=(busybox, ["sh", "-c", "ls /work/in > /work/out/parts.txt; "
                          "cat /work/in/*/lines.txt | awk '{s+=$1} END {print s}' "
                          "> /work/out/total.txt"]),
    )  # fmt: skip
    assert len(batch.task_ids) == 11
    info = batch.wait(timeout=300)
    problems = [(t.logs or [])[-1].system_logs for t in members(client, batch.id)]
    assert info.counts == {"COMPLETE": 11}, problems
    assert info.map == BatchMap(over="s3://raw/traces/*.segy", chunk=5, to="s3://raw/index/",
                                objects=50)  # fmt: skip
    tasks = members(client, batch.id)
    maps, reduce = tasks[:10], tasks[10]
    assert reduce.name == "reduce"
    for m in maps:
        assert len([i for i in m.inputs or [] if (i.url or "").endswith(".segy")]) == 5
    parts = bucket.get_object(Bucket="raw", Key="index/reduce/parts.txt")["Body"].read().decode()
    assert parts.split() == [f"chunk-{i:05d}" for i in range(10)]
    total = bucket.get_object(Bucket="raw", Key="index/reduce/total.txt")["Body"].read()
    assert total.strip() == b"50"
    last_map_end = max(parse_rfc3339((m.logs or [])[-1].end_time or "") for m in maps)
    reduce_start = parse_rfc3339((reduce.logs or [])[-1].start_time or "")
    assert reduce_start >= last_map_end


def test_retry_on_exit_75_until_success_and_exit_1_is_not_retried(
    host_tasks_as_root: None, server: Any, client: Client, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        "echo attempt $TOOLSHIP_ATTEMPT; [ $n -ge 3 ] || exit 75"
    )
    task = client.run(
        "unused", ["sh", "-c", script], runtime="process", retries=3, retry_on="exit:75"
    )
    assert task.state is TaskState.COMPLETE
    logs = task.info().logs or []
    assert len(logs) == 3
    assert [a.logs[-1].exit_code for a in logs] == [75, 75, 0]
    assert [(a.logs[-1].stdout or "").strip() for a in logs] == [f"attempt {i}" for i in (1, 2, 3)]
    assert "retrying (attempt 2 of at most 4)" in " ".join(logs[0].system_logs or [])

    counter.unlink()
    attached = toolship("run", "--retries", "3", "--retry-on", "exit:75", "--runtime", "process",
                        "unused", "--", "sh", "-c", script)  # fmt: skip
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout == "attempt 1\nattempt 2\nattempt 3\n"  # every attempt's output

    once = client.run("unused", ["sh", "-c", "exit 1"], runtime="process", retries=3,
                      retry_on="exit:75")  # fmt: skip
    assert once.state is TaskState.EXECUTOR_ERROR
    assert len(once.info().logs or []) == 1


def test_report_of_a_cpu_sweep_shows_speedup_and_writes_a_png(
    cli_env: Path, tmp_path: Path, busybox: str
) -> None:
    work = "n={cpu}; per=$((300000 / n)); for w in $(seq $n); do " \
           "(i=0; while [ $i -lt $per ]; do i=$((i+1)); done) & done; wait"  # fmt: skip
    done = toolship("sweep", "--param", "cpu=1,2", "--max-parallel", "1", busybox,
                    "--", "sh", "-c", work)  # fmt: skip
    assert done.returncode == 0, done.stderr
    batch_id = done.stdout.split()[1]
    png = tmp_path / "report.png"
    rep = toolship("report", batch_id, "--png", str(png))
    assert rep.returncode == 0, rep.stderr
    text = rep.stdout
    assert "scaling over cpu" in text
    assert "cpu=1    T=" in text and "speed-up 1.00  efficiency 100%" in text
    line2 = next(line for line in text.splitlines() if line.strip().startswith("cpu=2 "))
    speedup = float(line2.split("speed-up")[1].split()[0])
    efficiency = float(line2.split("efficiency")[1].strip().rstrip("%")) / 100
    assert speedup > 0 and efficiency == pytest.approx(speedup / 2, abs=0.01), text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    with Client() as c:
        report = c.batch_report(batch_id)
    cpu = [m.cpu_seconds for m in report.members]
    assert all(c is not None and c > 0.3 for c in cpu), cpu  # measured by the cgroup
    assert all((m.peak_memory_bytes or 0) > 0 for m in report.members)

    # Each attempt's accounting cgroup goes once its figures are read (after the final
    # state is written, off the task's path), in every hierarchy.
    def cgroups() -> list[Path]:
        tops = Path("/sys/fs/cgroup").iterdir()
        return [p for t in tops for m in report.members for p in t.glob(f"toolship/{m.id}-*")]

    wait_for("the attempts' cgroups to be removed", lambda: not cgroups())


def test_kill_dash_nine_keeps_throttles_dependencies_and_retries(
    host_tasks_as_root: None, cli_env: Path, tmp_path: Path
) -> None:
    """A server killed mid-batch comes back with its throttle, held children and retries."""
    import signal
    import time

    from toolship.embedded import find_server

    runs = tmp_path / "runs"
    runs.mkdir()
    # Each member records its start; some fail once with exit 75 and are retried.
    script = (
        f"echo $TOOLSHIP_ARRAY_INDEX >> {runs}/started; sleep 1; "
        f"if [ $(($TOOLSHIP_ARRAY_INDEX % 2)) -eq 0 ] && [ $TOOLSHIP_ATTEMPT -eq 1 ]; "
        "then exit 75; fi"
    )
    done = toolship(
        "sweep", "-d", "--param", "i=" + ",".join(map(str, range(6))), "--max-parallel", "2",
        "--retries", "1", "--retry-on", "exit:75", "--runtime", "process", "unused",
        "--", "sh", "-c", script,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    batch_id = done.stdout.strip()
    with Client() as c:
        members_now = list(c.tasks(batch=batch_id))
        last = members_now[0].id or ""  # newest first
        child = c.submit("unused", ["echo", "after all"], runtime="process", after=[last])
    time.sleep(1.5)
    found = find_server(cli_env)
    assert found is not None
    os.kill(found.pid, signal.SIGKILL)
    time.sleep(0.5)
    r = toolship("batch", "wait", batch_id, "--timeout", "120")  # restarts the server
    assert r.returncode == 0, r.stdout + r.stderr
    with Client() as c:
        assert c.wait(child.id, 60) is TaskState.COMPLETE
        tasks = members(c, batch_id)
        spans = []
        for t in tasks:
            index = int(((t.executors or [])[0].env or {})["TOOLSHIP_ARRAY_INDEX"])
            logs = t.logs or []
            assert len(logs) == (2 if index % 2 == 0 else 1), t.model_dump_json()
            for attempt in logs:
                for e in attempt.logs:
                    spans.append(span(e))
    started = (runs / "started").read_text().split()
    assert sorted(started) == sorted([str(i) for i in range(6)] + ["0", "2", "4"])
    assert peak_running(spans) <= 2
