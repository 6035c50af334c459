"""Slurm backend: how fast submitted tasks start, against a raw ``sbatch`` loop.

    .venv/bin/python -m bench.slurm [--n 100] [--short 40] [--rounds 3]

Needs the local two-node cluster (``scripts/slurm-cluster.sh start``).  Every task is
one Slurm job on both sides: toolship through ``toolship serve --backend slurm`` (the
job runs ``python -m toolship.worker``, which starts the container), the baseline as a
loop of ``sbatch`` calls of a script that runs podman itself and keeps its output as
sbatch does by default (``slurm-JOBID.out``; toolship keeps each job's output too).
A job's start is the first line of its batch script (a timestamp; toolship's comes
from ``slurm.prologue``).

1. Submit-to-start rate — the goal (>= 0.8): N / (first submission → last job start),
   toolship ÷ raw, with room on the cluster for every job, as on a cluster that is not
   full: the bench adds a partition ``bench`` over the same two nodes whose cores may
   each hold several jobs (``OverSubscribe=FORCE``, created with ``scontrol`` and
   deleted afterwards).  On both sides the script sleeps right after its timestamp, so
   no job ends (and frees room) before the last one has started, and no payload runs
   while jobs are still being started: on a real cluster a job's payload runs on its own
   node's cores, here all "nodes" are this machine's two cores and N payloads starting
   at once would slow the launch of the others (that cost is figure 2).  Once every
   job has started, all are cancelled.  toolship is measured twice: N create requests
   one after the other (like the raw loop's N sbatch calls), and one batch request of
   N tasks.  ``--rounds`` rounds alternate the order of the three; each figure is the
   median round's ratio (timings here vary by tens of percent from run to run).
2. Short jobs through the four cores of the default partition (no goal, reported):
   ``podman run … BUSYBOX true``, one core each.  There a job's length, not its start,
   sets the pace, so the ratio of completion rates shows what toolship's per-job worker
   (a Python process that fetches the task and reports to the server) costs next to a
   payload of a third of a second, on a machine whose two cores also run the server,
   slurmctld and both slurmd.

Writes bench/results/slurm.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import BUSYBOX, need, server, verdict, write_result
from toolship import Client, Task, TaskState
from toolship.spec import build_task

CONF = Path(os.environ.get("TOOLSHIP_SLURM_DIR") or "/tmp/toolship-slurm") / "slurm.conf"
PARTITION = "bench"
LABEL = "toolship.bench=slurm"
PODMAN = ["podman", "run", "--rm", "--network", "none", "--pull", "never", "--label", LABEL]
PAYLOAD = [BUSYBOX, "true"]
HOLD = "sleep 600"  # the held jobs' second line: cancelled before it ends


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def _starts(path: Path, count: int, timeout: float) -> list[float]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= count:
            return sorted(float(x) for x in lines)
        time.sleep(0.1)
    raise SystemExit(f"only {len(lines)} of {count} jobs started within {timeout:.0f} s")


def _idle() -> None:
    """Wait until the cluster runs nothing (so both sides start from the same state)."""
    while _run("squeue", "--noheader", "--states=PD,R,CG").strip():
        time.sleep(0.2)


def _no_containers() -> None:
    """Remove what is left of the payload containers (a cancelled raw job leaves its own)."""
    ids = _run("podman", "ps", "-aq", "--filter", f"label={LABEL}").split()
    if ids:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *ids], capture_output=True, check=False)


@contextmanager
def room_for(n: int) -> Iterator[None]:
    """A partition over every node where each core may hold enough jobs for all ``n``."""
    cores = sum(int(x) for x in _run("sinfo", "--noheader", "-N", "-o", "%c").split())
    per_core = max(1, math.ceil(n / cores))
    subprocess.run(["scontrol", "delete", f"PartitionName={PARTITION}"], capture_output=True)
    _run(
        "scontrol", "create", f"PartitionName={PARTITION}", "Nodes=ALL", "State=UP",
        "MaxTime=INFINITE", f"OverSubscribe=FORCE:{per_core}", "DefMemPerCPU=16",
    )  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(["scancel", f"--partition={PARTITION}"], check=False)
        _idle()
        _no_containers()
        subprocess.run(["scontrol", "delete", f"PartitionName={PARTITION}"], check=False)


def raw(work: Path, n: int, partition: str | None) -> tuple[float, float]:
    """A plain sbatch loop: seconds from the first submission to the last start, and to the
    last end (NaN for held jobs, which are cancelled instead)."""
    held = partition is not None
    work = Path(tempfile.mkdtemp(prefix="raw-", dir=work))  # fresh files every run
    starts = work / "starts"
    done = work / "done"
    script = work / "raw.sh"
    # The job's output is kept, as sbatch does by default (slurm-JOBID.out in the
    # directory it is called from) and as toolship keeps each job's.
    lines = ["#!/bin/sh", "#SBATCH --cpus-per-task=1"]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    lines.append(f"date +%s.%N >> {starts}")
    if held:
        lines.append(HOLD)
    lines += [" ".join(PODMAN + PAYLOAD), f"echo x >> {done}"]
    script.write_text("\n".join(lines) + "\n")
    _idle()
    t0 = time.time()
    for _ in range(n):
        subprocess.run(["sbatch", "--parsable", "--quiet", str(script)], cwd=work,
                       capture_output=True, check=True)  # fmt: skip
    last_start = _starts(starts, n, 600)[-1]
    if partition:  # held jobs: cancelled by room_for
        return last_start - t0, math.nan
    while not done.exists() or len(done.read_text().split()) < n:
        time.sleep(0.1)
    return last_start - t0, time.time() - t0


def ours(work: Path, n: int, partition: str | None, *, batch: bool = False) -> tuple[float, float]:
    """The same through toolship: seconds to the last start, and to the last task's end.

    The tasks are created one request each (like the raw loop's one sbatch each), or with
    ``batch`` as one batch request (``POST /api/v1/batches``, ``Client.create_batch``).
    """
    held = partition is not None
    work = Path(tempfile.mkdtemp(prefix="toolship-", dir=work))  # fresh files every run
    starts = work / "starts"
    prologue = [f"date +%s.%N >> {starts}", *([HOLD] if held else [])]
    settings = {
        "TOOLSHIP_BACKEND": "slurm",
        "TOOLSHIP_SLURM__PROLOGUE": json.dumps(prologue),
        "SLURM_CONF": str(CONF),
    }
    params = {"partition": partition} if partition else None
    home = work / "home"
    payload = PAYLOAD
    with server(home, **settings) as srv, Client(srv.url, srv.token) as client:
        _idle()
        t0 = time.time()
        if batch:
            doc = build_task(payload[0], payload[1:], params=params, network=False)
            members = client.create_batch({"tasks": [doc] * n})
            tasks = [Task(client, task_id) for task_id in members.task_ids]
        else:
            tasks = [
                client.submit(payload[0], payload[1:], params=params, network=False)
                for _ in range(n)
            ]
        last_start = _starts(starts, n, 900)[-1] - t0
        if partition:
            for task in tasks:
                task.cancel()
            for task in tasks:
                task.wait(300)
            return last_start, math.nan
        for task in tasks:
            state = task.wait(900)
            if state is not TaskState.COMPLETE:
                raise SystemExit(f"task {task.id} ended {state}: {task.info()}")
        return last_start, time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="held jobs per side (start rate)")
    ap.add_argument("--short", type=int, default=40, help="short jobs per side (0: skip)")
    ap.add_argument("--rounds", type=int, default=3, help="start-rate rounds (median)")
    args = ap.parse_args()
    need("podman")
    need("sbatch")
    if not CONF.exists():
        raise SystemExit("the local Slurm cluster is not running: scripts/slurm-cluster.sh start")
    os.environ["SLURM_CONF"] = str(CONF)
    work = Path(tempfile.mkdtemp(prefix="toolship-bench-slurm-"))
    result: dict[str, object] = {"n": args.n, "short_n": args.short}
    try:
        # Rounds alternate the order of the sides; each figure is the median round's ratio
        # (this machine's timings vary by tens of percent from one run to the next).
        def one_by_one(w: Path, n: int, p: str | None) -> tuple[float, float]:
            return ours(w, n, p)

        def as_batch(w: Path, n: int, p: str | None) -> tuple[float, float]:
            return ours(w, n, p, batch=True)

        sides = [raw, one_by_one, as_batch]
        rates: dict[str, list[float]] = {side.__name__: [] for side in sides}
        for r in range(args.rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                with room_for(args.n):
                    took, _ = side(work, args.n, PARTITION)
                rates[side.__name__].append(args.n / took)
        for name, what in (("one_by_one", "one create request each"),
                           ("as_batch", "one batch request")):  # fmt: skip
            ratios = sorted(o / w for o, w in zip(rates[name], rates["raw"], strict=True))
            ratio = statistics.median(ratios)
            print(
                f"{args.n} jobs with room for all, submit to start, toolship with {what} "
                f"({args.rounds} rounds, median): toolship {statistics.median(rates[name]):.1f} "
                f"/s, raw sbatch loop {statistics.median(rates['raw']):.1f} /s: ratio "
                f"{ratio:.2f} ({verdict(ratio, 0.8, higher_is_better=True)}); "
                f"rounds: {', '.join(f'{x:.2f}' for x in ratios)}"
            )
            result[f"{name}_ratio"] = ratio
            result[f"{name}_round_ratios"] = ratios
        result["rates"] = rates
        result["rounds"] = args.rounds
        if args.short:
            m = args.short
            _, raw_done = raw(work, m, None)
            _, our_done = ours(work, m, None)
            done_ratio = raw_done / our_done
            print(
                f"{m} short jobs (podman … true) through the 4 cores of the default partition, "
                f"submit to all done: toolship {our_done:.1f} s, raw {raw_done:.1f} s: "
                f"completion rate ratio {done_ratio:.2f} (no goal: the per-job worker's cost)"
            )
            result.update(toolship_done_s=our_done, raw_done_s=raw_done, done_ratio=done_ratio)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"results: {write_result('slurm', result)}")


if __name__ == "__main__":
    main()
