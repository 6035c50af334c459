"""The fault-injection suite's longer form: many rounds of kill -9, at random.

    .venv/bin/python -m bench.faults [--rounds 10] [--workloads 3] [--seed 1]

Each round starts a server on a fresh home, submits ``--workloads`` copies of the
resilience harness's mixed workload (tests/resilience/harness.py: 8 tasks each, with
S3 inputs and outputs, a batch, a dependency and a retry), kills the server with
kill -9 — at a pause point drawn at random (staged, started, exited, uploaded, final)
or after a random delay — starts it again on the same home and checks the invariant
on every task: one final state through valid transitions, no attempt run twice, every
output whole, no container left.  Prints each round's recovery time (fault cleared to
every task final), then the totals; writes bench/results/faults.json.  Exits 1 if any
round broke the invariant.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import read_when_written
from tests.resilience.harness import (
    Watch,
    check,
    crash,
    moto_bucket,
    runs_folder,
    submit_workload,
)
from tests.security.crashing import Server

from bench.common import median, write_result
from toolship import Client
from toolship.worker.testpoints import POINTS, VARIABLE


def one_round(n: int, args: argparse.Namespace, rng: random.Random, work: Path) -> dict[str, Any]:
    """Start, load, kill -9, restart, check: what happened, and how long recovery took."""
    where = rng.choice([*POINTS, "random"])
    home = work / f"home-{n}"
    home.mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TOOLSHIP_HOME", str(home))
        env.delenv("TOOLSHIP_SERVER", raising=False)
        env.delenv("TOOLSHIP_TOKEN", raising=False)
        marker = home / "paused"
        if where != "random":
            env.setenv(VARIABLE, f"{where}:{marker}")
        with moto_bucket(env, f"faults-{n}") as bucket, runs_folder(env) as runs:
            server = Server(home)
            try:
                first = server.start()
                url = lambda: server.url if server.current else None  # noqa: E731
                with Watch(url, lambda: first.token) as watch:
                    with Client(first.url, first.token, timeout=30) as client:
                        loads = [
                            submit_workload(client, args.image, bucket, runs, f"r{n}w{i}")
                            for i in range(args.workloads)
                        ]
                    if where == "random":
                        time.sleep(rng.uniform(0.2, 4.0))
                    else:
                        read_when_written(marker, timeout=120)
                    crash(server)
                    env.delenv(VARIABLE, raising=False)
                    again = server.start()
                    cleared = time.monotonic()
                    with Client(again.url, again.token, timeout=30) as client:
                        recovery = 0.0
                        for load in loads:
                            found = check(f"round {n} (kill at {where})", client, load, bucket,
                                          runs, watch, cleared)  # fmt: skip
                            recovery = max(recovery, found.recovery)
                return {"round": n, "kill": where, "tasks": 8 * len(loads), "ok": True,
                        "recovery_s": round(recovery, 2)}  # fmt: skip
            except AssertionError as exc:
                print(f"round {n}: INVARIANT BROKEN: {exc}", file=sys.stderr)
                return {"round": n, "kill": where, "ok": False, "error": str(exc)[:2000]}
            finally:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--workloads", type=int, default=3, help="8 tasks each, per round")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--image", default="localhost/toolship-busybox")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="toolship-faults-") as tmp:
        rounds = [one_round(n, args, rng, Path(tmp)) for n in range(1, args.rounds + 1)]
    for r in rounds:
        status = f"recovered in {r['recovery_s']:.1f} s" if r["ok"] else "BROKEN"
        print(f"round {r['round']:3d}  kill -9 at {r['kill']:9s} {status}")
    ok = [r for r in rounds if r["ok"]]
    times = [r["recovery_s"] for r in ok]
    print(
        f"{len(rounds)} rounds, {sum(r['tasks'] for r in ok)} tasks checked, "
        f"{len(rounds) - len(ok)} broke the invariant; recovery median "
        f"{median(times) if times else 0:.1f} s, worst {max(times, default=0):.1f} s"
    )
    write_result("faults", {"rounds": rounds, "seed": args.seed})
    if len(ok) < len(rounds):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
