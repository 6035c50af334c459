"""Per-task overhead: a trivial container task through toolship vs bare ``podman run``.

    .venv/bin/python -m bench.overhead [--n 20]

Each sample submits ``true`` on the busybox image through the API (``run --detach`` as
the SDK does it) and waits for the final state; the baseline is
``podman run --rm --network none IMG true`` on the same image, alternated with it so both
see the same machine.  Goal: median ratio <= 1.15.  Writes bench/results/overhead.json.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import BUSYBOX, median, need, server, verdict, write_result
from toolship import Client, TaskState


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    need("podman")
    work = Path(tempfile.mkdtemp(prefix="toolship-bench-overhead-"))
    try:
        with server(work / "home") as srv, Client(srv.url, srv.token) as client:
            bare: list[float] = []
            ours: list[float] = []
            for i in range(args.n + 2):
                t0 = time.perf_counter()
                subprocess.run(
                    ["podman", "run", "--rm", "--network", "none", BUSYBOX, "true"], check=True
                )
                b = time.perf_counter() - t0
                t0 = time.perf_counter()
                task = client.submit(BUSYBOX, ["true"])
                state = task.wait(120)
                o = time.perf_counter() - t0
                if state is not TaskState.COMPLETE:
                    raise SystemExit(f"task {task.id} ended {state}")
                if i >= 2:  # the first runs warm caches
                    bare.append(b)
                    ours.append(o)
        ratio = median(ours) / median(bare)
        print(f"trivial task, submit to final state: toolship {median(ours) * 1000:.0f} ms, "
              f"bare podman run {median(bare) * 1000:.0f} ms: ratio {ratio:.2f} "
              f"({verdict(ratio, 1.15, higher_is_better=False)})")  # fmt: skip
        path = write_result(
            "overhead",
            {"n": args.n, "toolship_median_s": median(ours), "podman_median_s": median(bare),
             "ratio": ratio, "toolship_s": ours, "podman_s": bare},
        )  # fmt: skip
        print(f"results: {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
