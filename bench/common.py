"""Shared benchmark plumbing: a server on loopback, timing, ratios, JSON results."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from toolship.db import Store, TaskRow
from toolship.engine.ids import new_task_id
from toolship.states import TaskState
from toolship.timeutil import now_rfc3339

# Where JSON results go (the smoke test points this elsewhere so real figures survive).
RESULTS = Path(os.environ.get("TOOLSHIP_BENCH_RESULTS") or Path(__file__).parent / "results")
BUSYBOX = "localhost/toolship-busybox"


def machine() -> str:
    cores = os.cpu_count()
    return f"{platform.node()} {platform.machine()} {cores} cores"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    token: str
    home: Path
    process: subprocess.Popen[bytes]

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, **kwargs
        )


@contextmanager
def server(home: Path, **settings: str) -> Iterator[Server]:
    """A real `toolship serve` on a free loopback port, with its own home and a token."""
    home.mkdir(parents=True, exist_ok=True)
    token = "bench-" + new_task_id()
    (home / "tokens").write_text(token + "\n")
    port = free_port()
    env = {
        **os.environ,
        "TOOLSHIP_HOME": str(home),
        "TOOLSHIP_SERVER__PORT": str(port),
        "TOOLSHIP_SERVER__TOKEN_FILE": str(home / "tokens"),
        **settings,
    }
    log = (home / "server.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolship", "serve"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(f"server did not start; see {home / 'server.log'}")
    try:
        yield Server(url=url, token=token, home=home, process=proc)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def fill(
    home: Path,
    count: int,
    *,
    state: TaskState = TaskState.COMPLETE,
    chunk: int = 20000,
    cpus: int = 1,
) -> None:
    """Store ``count`` tasks straight into the database (no execution)."""
    store = Store.open(f"sqlite:///{home / 'toolship.db'}")
    spec = {
        "executors": [{"image": BUSYBOX, "command": ["true"]}],
        "resources": {"cpu_cores": cpus},
    }
    done_logs = [{"logs": [{"exit_code": 0, "stdout": "", "stderr": ""}], "outputs": []}]
    logs = done_logs if state is TaskState.COMPLETE else []
    done = 0
    while done < count:
        n = min(chunk, count - done)
        store.insert_tasks(
            [
                TaskRow(
                    seq=0, id=new_task_id(), state=state, name=f"filler-{done + i}",
                    creation_time=now_rfc3339(), priority=0, cpus=cpus, memory_gb=0.0, gpus=0,
                    spec=spec, logs=logs,
                )
                for i in range(n)
            ]
        )  # fmt: skip
        done += n
    store.close()


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def verdict(ratio: float, goal: float, *, higher_is_better: bool) -> str:
    ok = ratio >= goal if higher_is_better else ratio <= goal
    return f"{'meets' if ok else 'MISSES'} goal {'>=' if higher_is_better else '<='} {goal:g}"


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "date": now_rfc3339(), "machine": machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def need(binary: str) -> None:
    if shutil.which(binary) is None:
        raise SystemExit(f"{binary} is missing: run scripts/setup-host.sh")
