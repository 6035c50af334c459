"""Run every benchmark: ``.venv/bin/python -m bench`` (full size) or ``-m bench --smoke``.

Each benchmark runs in its own process and prints its figures with their ratios and
goals; JSON results land in bench/results/.  ``--smoke`` uses tiny sizes (seconds) so
CI keeps the suite working without judging the figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

FULL: dict[str, list[str]] = {
    "overhead": [],
    "throughput": [],
    "api": [],
    "memory": [],
    "staging": [],
    "batch": [],
    "audit": [],  # stores 100 000 tasks once (about 2 minutes), then cached
    "ui": [],  # shares bench.api's cached million tasks
    "slurm": ["--n", "100", "--short", "40"],  # about 2 1/2 minutes
}
SMOKE: dict[str, list[str]] = {
    "overhead": ["--n", "2"],
    "throughput": ["--process", "20", "--podman", "4"],
    "api": ["--big", "2000", "--small", "100", "--requests", "10", "--seconds", "1"],
    "memory": ["--finished", "500", "--queued", "50"],
    "staging": [
        *("--big-mib", "8", "--small", "10", "--zero-copy-gib", "1"),
        *("--repeat", "1", "--latency-repeat", "1"),
    ],
    "batch": ["--members", "50", "--small", "100", "--big", "1000", "--ticks", "50"],
    "audit": ["--tasks", "2000", "--requests", "3"],
    "ui": ["--tasks", "2000", "--requests", "10", "--followers", "5", "--seconds", "2"],
    "slurm": ["--n", "4", "--short", "4", "--rounds", "1"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, to check they still run")
    ap.add_argument("only", nargs="*", help=f"some of: {', '.join(FULL)}")
    args = ap.parse_args()
    plan = SMOKE if args.smoke else FULL
    failed = []
    for name in args.only or list(plan):
        print(f"== bench.{name}", flush=True)
        t0 = time.monotonic()
        code = subprocess.run([sys.executable, "-m", f"bench.{name}", *plan[name]]).returncode
        print(f"   ({time.monotonic() - t0:.0f} s)", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
