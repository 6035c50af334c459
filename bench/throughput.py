"""Task throughput: many trivial tasks submitted at once, against a plain process pool.

    .venv/bin/python -m bench.throughput [--process 5000] [--podman 200] [--rounds 4]

* process runtime: N tasks running ``true`` on the host, completed tasks per second ÷
  the rate of the same command run by a plain ``subprocess`` pool as wide as the server
  runs tasks at once (its cores).  Goal >= 0.5.
* podman: M trivial container tasks ÷ a raw pool of ``podman run --rm --network none``
  of the same width (200 tasks: ~25 s each way at ~8/s).  Goal >= 0.9.

Each is measured in ``--rounds`` alternating rounds (the raw way, then toolship, N ÷
rounds tasks each): a machine whose speed drifts — podman's storage growing, other
work — weighs on both alike, where one long run of each compared the start of a session
with its end.  Beside the ratio it prints the server's own CPU per task and its
children's (the keeper of executors, what it started: ``podman run``, a host command;
the podman commands the server runs itself), which is what toolship adds on a machine
whose cores the tasks need.
Writes bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import BUSYBOX, need, server, verdict, write_result
from toolship import Client

SUBMITTERS = 16
POLL = 0.05


def raw_rate(argv: list[str], count: int, width: int) -> float:
    def one(_: int) -> None:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(width) as pool:
        list(pool.map(one, range(count)))
    return count / (time.perf_counter() - t0)


def toolship_rate(client: Client, count: int, runtime: str) -> float:
    """Submit ``count`` tasks from several threads at once; rate from first submit to last end.

    The end is seen the way TES clients watch many tasks: by polling ListTasks (MINIMAL,
    filtered by name and state) every POLL seconds, not by one long-poll per task.
    """
    name = f"throughput-{runtime}-{time.time_ns()}"
    doc: dict[str, Any] = {
        "name": name,
        "executors": [{"image": BUSYBOX, "command": ["true"]}],
        "resources": {"cpu_cores": 1, "backend_parameters": {"runtime": runtime}},
    }
    t0 = time.perf_counter()
    with ThreadPoolExecutor(SUBMITTERS) as pool:
        list(pool.map(lambda _: client.create(doc), range(count)))
    while any(
        next(client.tasks(state=state, name=name, view="MINIMAL", page_size=1), None)
        for state in ("QUEUED", "INITIALIZING", "RUNNING")
    ):
        time.sleep(POLL)
    elapsed = time.perf_counter() - t0
    done = sum(1 for _ in client.tasks(state="COMPLETE", name=name, view="MINIMAL", page_size=2047))
    if done != count:
        raise SystemExit(f"only {done} of {count} {runtime} tasks ended COMPLETE")
    return count / elapsed


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> tuple[float, float]:
    """A process's own CPU seconds, and those of its children: the ones it reaped, and the
    ones still running (the keeper of executors) with what they reaped (/proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = _stat(pid)
    own = int(fields[11]) + int(fields[12])
    children = int(fields[13]) + int(fields[14])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                child = _stat(int(entry.name))
            except OSError:
                continue
            if int(child[1]) == pid:  # its parent
                children += sum(int(f) for f in child[11:15])
    return own / tick, children / tick


@dataclass
class Compared:
    raw: float  # tasks/s
    ours: float
    server_ms: float  # the server's CPU per task
    children_ms: float

    @property
    def ratio(self) -> float:
        return self.ours / self.raw


def compare(
    raw: Callable[[int], float], ours: Callable[[int], float], count: int, rounds: int, pid: int
) -> Compared:
    """Both rates over ``rounds`` alternating rounds (count ÷ rounds tasks each), and the
    server's CPU per task during toolship's."""
    each = max(1, count // rounds)
    raw_s = ours_s = server_s = children_s = 0.0
    for _ in range(rounds):
        raw_s += each / raw(each)
        own0, kids0 = cpu_seconds(pid)
        ours_s += each / ours(each)
        own1, kids1 = cpu_seconds(pid)
        server_s += own1 - own0
        children_s += kids1 - kids0
    n = each * rounds
    return Compared(n / raw_s, n / ours_s, server_s / n * 1000, children_s / n * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--process", type=int, default=5000)
    ap.add_argument("--podman", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds of each way")
    args = ap.parse_args()
    need("podman")
    width = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="toolship-bench-throughput-"))
    results: dict[str, Any] = {"width": width}
    try:
        # The process runtime is the operator's choice on a shared server.
        allow = {"TOOLSHIP_POLICY__RUNTIMES": '["podman", "process"]'}
        with (
            server(work / "home", **allow) as srv,
            Client(srv.url, srv.token, timeout=600) as client,
        ):
            # runtime, its raw command, what the raw way is called, the goal, the rate's digits
            cases = [
                ("process", ["true"], "subprocess pool", 0.5, 0, args.process),
                ("podman", ["podman", "run", "--rm", "--network", "none", BUSYBOX, "true"],
                 "raw podman pool", 0.9, 1, args.podman),
            ]  # fmt: skip
            for runtime, argv, raw_name, goal, digits, count in cases:
                if not count:
                    continue
                c = compare(
                    lambda n, argv=argv: raw_rate(argv, n, width),
                    lambda n, runtime=runtime: toolship_rate(client, n, runtime),
                    count, args.rounds, srv.process.pid,
                )  # fmt: skip
                results.update({f"{runtime}_tasks": count, f"{runtime}_rate": c.ours,
                                f"{runtime}_raw_rate": c.raw, f"{runtime}_ratio": c.ratio,
                                f"{runtime}_server_ms": c.server_ms,
                                f"{runtime}_children_ms": c.children_ms})  # fmt: skip
                print(f"{count} {runtime} tasks: toolship {c.ours:.{digits}f}/s, {raw_name} "
                      f"of {width} {c.raw:.{digits}f}/s: ratio {c.ratio:.2f} "
                      f"({verdict(c.ratio, goal, higher_is_better=True)}); server CPU "
                      f"{c.server_ms:.1f} ms/task, its children {c.children_ms:.1f}",
                      flush=True)  # fmt: skip
        print(f"results: {write_result('throughput', results)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
