"""Task throughput: many trivial tasks submitted at once, against a plain process pool.

    .venv/bin/python -m bench.throughput [--process 5000] [--podman 200]

* process runtime: N tasks running ``true`` on the host, completed tasks per second ÷
  the rate of the same command run by a plain ``subprocess`` pool as wide as the server
  runs tasks at once (its cores).  Goal >= 0.5.
* podman: M trivial container tasks ÷ a raw pool of ``podman run --rm --network none``
  of the same width (200 tasks: ~45 s each way at ~4.5/s).  Goal >= 0.9.
Writes bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--process", type=int, default=5000)
    ap.add_argument("--podman", type=int, default=200)
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
            if args.process:
                base = raw_rate(["true"], args.process, width)
                ours = toolship_rate(client, args.process, "process")
                ratio = ours / base
                results.update(process_tasks=args.process, process_rate=ours,
                               process_raw_rate=base, process_ratio=ratio)  # fmt: skip
                print(f"{args.process} process tasks: toolship {ours:.0f}/s, subprocess pool of "
                      f"{width} {base:.0f}/s: ratio {ratio:.2f} "
                      f"({verdict(ratio, 0.5, higher_is_better=True)})", flush=True)  # fmt: skip
            if args.podman:
                argv = ["podman", "run", "--rm", "--network", "none", BUSYBOX, "true"]
                base = raw_rate(argv, args.podman, width)
                ours = toolship_rate(client, args.podman, "podman")
                ratio = ours / base
                results.update(podman_tasks=args.podman, podman_rate=ours,
                               podman_raw_rate=base, podman_ratio=ratio)  # fmt: skip
                print(f"{args.podman} podman tasks: toolship {ours:.1f}/s, raw podman pool of "
                      f"{width} {base:.1f}/s: ratio {ratio:.2f} "
                      f"({verdict(ratio, 0.9, higher_is_better=True)})", flush=True)  # fmt: skip
        print(f"results: {write_result('throughput', results)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
