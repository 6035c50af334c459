"""Batches: bulk creation against one-by-one CreateTask, and scheduler ticks against queue length.

    .venv/bin/python -m bench.batch [--members 10000] [--small 1000] [--big 100000]

Prints and writes bench/results/batch.json:
  * the time to create a MEMBERS-member sweep in one POST /api/v1/batches divided by the
    time of MEMBERS single CreateTask round trips (one client, keep-alive) — goal <= 0.05;
  * the scheduler's tick (the pure decision of what starts now, as the dispatch loop
    asks it: 2 free cores, 1-core tasks) with BIG tasks queued divided by the same with
    SMALL queued — goal <= 2 (a tick must not grow with the queue).
Nothing runs meanwhile: the server has one core, held by a long task, so every member
stays QUEUED and only creation is timed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import median, server, verdict, write_result
from toolship.compute.base import Capacity, Request
from toolship.engine.scheduler import Queue, pick

TES = "/ga4gh/tes/v1"


def tick_times(queued: int, repeat: int) -> list[float]:
    queue = Queue()
    for i in range(queued):
        queue.add(Request(f"t{i:08d}", cpus=1, memory_gb=0.5, priority=i % 3))
    free = Capacity(2, 8)
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        chosen = pick(queue, free)
        out.append(time.perf_counter() - t0)
        assert len(chosen) == 2
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=10_000)
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--ticks", type=int, default=2_000)
    args = ap.parse_args()

    task = {
        "executors": [{"image": "unused", "command": ["echo", "{i}"]}],
        "resources": {"cpu_cores": 1, "backend_parameters": {"runtime": "process"}},
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        server(
            Path(tmp) / "home", TOOLSHIP_LOCAL__CPUS="1", TOOLSHIP_POLICY__RUNTIMES='["process"]'
        ) as srv,
        srv.client(timeout=600) as http,
    ):
        blocker = {
            "executors": [{"image": "unused", "command": ["sleep", "3600"]}],
            "resources": {"cpu_cores": 1, "backend_parameters": {"runtime": "process"}},
        }
        blocker_id = http.post(f"{TES}/tasks", json=blocker).json()["id"]
        rows = [{"i": str(i)} for i in range(args.members)]
        t0 = time.perf_counter()
        r = http.post("/api/v1/batches", json={"template": task, "params": rows})
        bulk = time.perf_counter() - t0
        r.raise_for_status()
        assert len(r.json()["task_ids"]) == args.members
        single = {**task, "executors": [{"image": "unused", "command": ["echo", "1"]}]}
        t0 = time.perf_counter()
        for _ in range(args.members):
            http.post(f"{TES}/tasks", json=single).raise_for_status()
        singles = time.perf_counter() - t0
        http.post(f"{TES}/tasks/{blocker_id}:cancel")
        http.post(f"/api/v1/batches/{r.json()['id']}:cancel")
    ratio = bulk / singles
    print(
        f"  sweep of {args.members:,} in one request: {bulk:.2f} s "
        f"({bulk / args.members * 1e6:.0f} µs/member); {args.members:,} CreateTask round "
        f"trips: {singles:.2f} s ({singles / args.members * 1e3:.2f} ms each)"
    )
    print(f"  bulk/single = {ratio:.3f}  ({verdict(ratio, 0.05, higher_is_better=False)})")

    small = median(tick_times(args.small, args.ticks))
    big = median(tick_times(args.big, args.ticks))
    tick_ratio = big / small
    print(
        f"  scheduler tick: {small * 1e6:.1f} µs with {args.small:,} queued, "
        f"{big * 1e6:.1f} µs with {args.big:,} queued"
    )
    print(
        f"  tick({args.big:,})/tick({args.small:,}) = {tick_ratio:.2f}  "
        f"({verdict(tick_ratio, 2.0, higher_is_better=False)})"
    )
    path = write_result(
        "batch",
        {
            "members": args.members,
            "bulk_seconds": bulk,
            "single_round_trips_seconds": singles,
            "bulk_over_single": ratio,
            "bulk_goal": 0.05,
            "tick_small_seconds": small,
            "tick_big_seconds": big,
            "queued_small": args.small,
            "queued_big": args.big,
            "tick_ratio": tick_ratio,
            "tick_goal": 2.0,
        },
    )
    print(f"  wrote {path}")


if __name__ == "__main__":
    main()
