"""Server memory with a big table: RSS with 1 000 000 finished and 10 000 queued tasks ÷
RSS when empty.  Goal <= 2.

    .venv/bin/python -m bench.memory [--finished 1000000] [--queued 10000]

The queued tasks ask for two cores of a server configured with one, so they stay queued
(stored straight into the database; the API would refuse them).  Writes
bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from bench.api import stored_home
from bench.common import fill, server, verdict, write_result
from toolship.states import TaskState


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def measure(home: Path) -> int:
    with server(home, TOOLSHIP_LOCAL__CPUS="1") as srv, srv.client(timeout=60) as c:
        for view in ("MINIMAL", "BASIC", "FULL"):  # exercise the list path a little
            c.get("/ga4gh/tes/v1/tasks", params={"view": view}).raise_for_status()
        return rss_kib(srv.process.pid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--finished", type=int, default=1_000_000)
    ap.add_argument("--queued", type=int, default=10_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="toolship-bench-memory-"))
    try:
        empty = measure(work / "empty")
        home = stored_home(args.finished, work)
        fill(home, args.queued, state=TaskState.QUEUED, cpus=2)
        full = measure(home)
        ratio = full / empty
        print(f"server RSS: {full / 1024:.0f} MiB with {args.finished:,} finished + "
              f"{args.queued:,} queued tasks, {empty / 1024:.0f} MiB empty: ratio {ratio:.2f} "
              f"({verdict(ratio, 2, higher_is_better=False)})")  # fmt: skip
        path = write_result(
            "memory",
            {
                "finished": args.finished,
                "queued": args.queued,
                "empty_kib": empty,
                "full_kib": full,
                "ratio": ratio,
            },
        )
        print(f"results: {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
