"""Slurm backend: how fast submitted tasks start, against a raw ``sbatch`` loop.

    .venv/bin/python -m bench.slurm [--n 100]

Needs the local two-node cluster (``scripts/slurm-cluster.sh start``).  Both sides run
the same payload, ``podman run --rm --network none BUSYBOX true``, as one Slurm job
each: toolship through ``toolship serve --backend slurm`` (N tasks created at once, the
job runs ``toolship worker``), the baseline as a loop of ``sbatch`` calls of a script
that runs podman itself.  A job's start is the first line of its batch script (a
timestamp; toolship's comes from ``slurm.prologue``).  Figure: toolship's
submit-to-start rate (N / time from the first submission to the last job start) ÷
the raw loop's.  Goal >= 0.8.  Writes bench/results/slurm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import BUSYBOX, need, server, verdict, write_result
from toolship import Client, TaskState

CONF = Path(os.environ.get("TOOLSHIP_SLURM_DIR") or "/tmp/toolship-slurm") / "slurm.conf"
PAYLOAD = ["podman", "run", "--rm", "--network", "none", "--pull", "never", BUSYBOX, "true"]


def _starts(path: Path, count: int, timeout: float) -> list[float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= count:
            return sorted(float(x) for x in lines)
        time.sleep(0.1)
    raise SystemExit(f"only {len(lines)} of {count} jobs started within {timeout:.0f} s")


def _idle() -> None:
    """Wait until the cluster runs nothing (so both sides start from the same state)."""
    while subprocess.run(
        ["squeue", "--noheader", "--states=PD,R,CG"], capture_output=True, text=True, check=True
    ).stdout.strip():
        time.sleep(0.2)


def _submitted(names: set[str], timeout: float) -> float:
    """When Slurm knew every job of ``names`` (polled with squeue)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = subprocess.run(
            ["squeue", "--noheader", "--states=all", "--format=%j"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        if names <= set(listed):
            return time.time()
        time.sleep(0.05)
    raise SystemExit("not every task reached Slurm")


def raw(work: Path, n: int) -> tuple[float, float, float]:
    """A plain sbatch loop: seconds from the first submission to the last submitted,
    to the last started, and to all done."""
    starts = work / "raw-starts"
    done = work / "raw-done"
    script = work / "raw.sh"
    script.write_text(
        "#!/bin/sh\n#SBATCH --cpus-per-task=1\n#SBATCH --output=/dev/null\n"
        f"date +%s.%N >> {starts}\n{' '.join(PAYLOAD)}\necho x >> {done}\n"
    )
    _idle()
    t0 = time.time()
    for _ in range(n):
        subprocess.run(["sbatch", "--parsable", "--quiet", str(script)], check=True,
                       capture_output=True)  # fmt: skip
    submitted = time.time()
    last_start = _starts(starts, n, 600)[-1]
    while not done.exists() or len(done.read_text().split()) < n:
        time.sleep(0.1)
    return submitted - t0, last_start - t0, time.time() - t0


def ours(work: Path, n: int) -> tuple[float, float, float]:
    starts = work / "toolship-starts"
    settings = {
        "TOOLSHIP_BACKEND": "slurm",
        "TOOLSHIP_SLURM__PROLOGUE": json.dumps([f"date +%s.%N >> {starts}"]),
        "SLURM_CONF": str(CONF),
    }
    with server(work / "home", **settings) as srv, Client(srv.url, srv.token) as client:
        _idle()
        t0 = time.time()
        tasks = [client.submit(BUSYBOX, ["true"]) for _ in range(n)]
        submitted = _submitted({f"toolship-{t.id}" for t in tasks}, 600)
        last_start = _starts(starts, n, 900)[-1]
        for task in tasks:
            state = task.wait(900)
            if state is not TaskState.COMPLETE:
                raise SystemExit(f"task {task.id} ended {state}: {task.info()}")
        return submitted - t0, last_start - t0, time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="jobs per side")
    args = ap.parse_args()
    need("podman")
    need("sbatch")
    if not CONF.exists():
        raise SystemExit("the local Slurm cluster is not running: scripts/slurm-cluster.sh start")
    os.environ["SLURM_CONF"] = str(CONF)
    work = Path(tempfile.mkdtemp(prefix="toolship-bench-slurm-"))
    try:
        raw_submit, raw_start, raw_done = raw(work, args.n)
        our_submit, our_start, our_done = ours(work, args.n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    raw_rate, our_rate = args.n / raw_start, args.n / our_start
    ratio = our_rate / raw_rate
    done_ratio = raw_done / our_done
    submit_ratio = raw_submit / our_submit
    print(
        f"{args.n} jobs, submit to all in Slurm's queue: toolship {args.n / our_submit:.1f} /s, "
        f"raw sbatch loop {args.n / raw_submit:.1f} /s: submit rate ratio {submit_ratio:.2f}"
    )
    print(
        f"{args.n} jobs, submit to start: toolship {our_rate:.2f} /s, raw sbatch loop "
        f"{raw_rate:.2f} /s: ratio {ratio:.2f} ({verdict(ratio, 0.8, higher_is_better=True)})"
    )
    print(f"{args.n} jobs, submit to all done: toolship {our_done:.1f} s, raw {raw_done:.1f} s: "
          f"completion rate ratio {done_ratio:.2f}")  # fmt: skip
    path = write_result(
        "slurm",
        {"n": args.n, "toolship_start_rate": our_rate, "raw_start_rate": raw_rate,
         "ratio": ratio, "toolship_done_s": our_done, "raw_done_s": raw_done,
         "done_ratio": done_ratio, "toolship_submit_s": our_submit, "raw_submit_s": raw_submit,
         "submit_ratio": submit_ratio},
    )  # fmt: skip
    print(f"results: {path}")


if __name__ == "__main__":
    main()
