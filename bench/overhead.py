"""Per-task overhead: a trivial container task through toolship vs bare ``podman run``.

    .venv/bin/python -m bench.overhead [--n 20]

Each sample submits ``true`` on the busybox image through the API (``run --detach`` as
the SDK does it) and waits for the final state (the SDK's long-polling wait).  Two
baselines run alternated with it, so all three see the same machine:

- bare: ``podman run --rm --network none IMG true``;
- flags: the ``podman run`` command line toolship itself ran for a task (read from
  the process table while a ``sleep`` task runs: confinement, user namespace, limits,
  accounting cgroup, work directory), with ``true`` as its command and a fresh name —
  what toolship's choices of flags cost, apart from toolship.

It prints the ratio against bare podman (goal <= 1.10), toolship's own cost in
milliseconds (goal <= 15 ms), and a timeline: the medians of the steps between
submitting and seeing the final state, from the task's record (RFC 3339 times with
microseconds) and the client's clock.  The executor's start is recorded once its
``podman run`` is started and its end once its exit is handled, so each task's own
cost is its whole time less that span (median of the samples); the difference of the
medians of toolship and of the flags baseline is printed too, but it carries the
run-to-run spread of two podman runs (tens of ms on a small machine).
Writes bench/results/overhead.json.
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
from toolship.runtime.usage import remove_cgroup
from toolship.timeutil import parse_rfc3339

GOAL_RATIO = 1.10
GOAL_OWN_MS = 15.0
STEPS = (
    ("submit → stored", "submit", "created"),
    ("stored → attempt started", "created", "attempt_start"),
    ("attempt started → executor started", "attempt_start", "exec_start"),
    ("executor started → executor recorded", "exec_start", "exec_end"),
    ("executor recorded → attempt ended", "exec_end", "attempt_end"),
    ("attempt ended → final state seen", "attempt_end", "seen"),
)


def toolship_argv(client: Client) -> list[str]:
    """The ``podman run …`` toolship runs for a task, read from the process table."""
    task = client.submit(BUSYBOX, ["sleep", "30"])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    words = (proc / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                # The keeper execs it: the argv is podman's own.
                podman_run = words[0].endswith(b"podman") and words[1:2] == [b"run"]
                if podman_run and task.id.encode() in b" ".join(words):
                    return [w.decode() for w in words if w]
            time.sleep(0.01)
        raise SystemExit(f"task {task.id}'s podman run was not found in the process table")
    finally:
        task.cancel()
        task.wait(60)


def flagged(argv: list[str], n: int) -> tuple[list[str], str]:
    """toolship's argv running ``true`` under a fresh name (and accounting cgroup)."""
    out = list(argv)
    out[out.index("--name") + 1] = f"toolship-bench-flags-{n}"
    cgroup = ""
    if "--cgroup-parent" in out:
        cgroup = f"/toolship/bench-flags-{n}"
        out[out.index("--cgroup-parent") + 1] = cgroup
    image = out.index(BUSYBOX)
    return [*out[: image + 1], "true"], cgroup


def timeline(client: Client, task_id: str, submit: float, seen: float) -> dict[str, float]:
    """When each step happened (seconds since the epoch), from the record and the client."""
    full = client.get(task_id, "FULL")
    attempt = full.logs[-1]
    executor = attempt.logs[0]

    def at(text: str | None) -> float:
        assert text is not None
        return parse_rfc3339(text).timestamp()

    return {
        "submit": submit,
        "created": at(full.creation_time),
        "attempt_start": at(attempt.start_time),
        "exec_start": at(executor.start_time),
        "exec_end": at(executor.end_time),
        "attempt_end": at(attempt.end_time),
        "seen": seen,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    need("podman")
    work = Path(tempfile.mkdtemp(prefix="toolship-bench-overhead-"))
    try:
        with server(work / "home") as srv, Client(srv.url, srv.token) as client:
            argv = toolship_argv(client)
            bare: list[float] = []
            flags: list[float] = []
            ours: list[float] = []
            times: list[dict[str, float]] = []
            for i in range(args.n + 2):
                t0 = time.perf_counter()
                subprocess.run(
                    ["podman", "run", "--rm", "--network", "none", BUSYBOX, "true"], check=True
                )
                b = time.perf_counter() - t0
                run, cgroup = flagged(argv, i)
                t0 = time.perf_counter()
                subprocess.run(run, check=True)
                f = time.perf_counter() - t0
                if cgroup:
                    remove_cgroup(cgroup)
                submitted, t0 = time.time(), time.perf_counter()
                task = client.submit(BUSYBOX, ["true"])
                state = task.wait(120)
                o = time.perf_counter() - t0
                seen = submitted + o
                if state is not TaskState.COMPLETE:
                    raise SystemExit(f"task {task.id} ended {state}")
                if i >= 2:  # the first runs warm caches
                    bare.append(b)
                    flags.append(f)
                    ours.append(o)
                    times.append(timeline(client, task.id, submitted, seen))
        ratio = median(ours) / median(bare)
        flag_ratio = median(flags) / median(bare)
        own_ms = median(
            [(t["seen"] - t["submit"] - (t["exec_end"] - t["exec_start"])) * 1000 for t in times]
        )
        apart_ms = (median(ours) - median(flags)) * 1000
        print(f"toolship's podman flags: {median(flags) * 1000:.0f} ms vs bare podman run "
              f"{median(bare) * 1000:.0f} ms: ratio {flag_ratio:.2f}")  # fmt: skip
        print("timeline of a task (medians, ms):")
        steps = {}
        for label, a, b_ in STEPS:
            steps[label] = median([(t[b_] - t[a]) * 1000 for t in times])
            print(f"  {label:<40} {steps[label]:7.1f}")
        print(f"  {'(the flags baseline: podman run alone)':<40} {median(flags) * 1000:7.1f}")
        print(f"toolship's own cost per task: {own_ms:.1f} ms outside its executor "
              f"({verdict(own_ms, GOAL_OWN_MS, higher_is_better=False)} ms); "
              f"toolship - flags baseline: {apart_ms:.1f} ms")  # fmt: skip
        print(f"trivial task, submit to final state: toolship {median(ours) * 1000:.0f} ms, "
              f"bare podman run {median(bare) * 1000:.0f} ms: ratio {ratio:.2f} "
              f"({verdict(ratio, GOAL_RATIO, higher_is_better=False)})")  # fmt: skip
        path = write_result(
            "overhead",
            {"n": args.n, "toolship_median_s": median(ours), "podman_median_s": median(bare),
             "flags_median_s": median(flags), "ratio": ratio, "flags_ratio": flag_ratio,
             "own_ms": own_ms, "toolship_minus_flags_ms": apart_ms, "timeline_ms": steps,
             "toolship_s": ours, "podman_s": bare, "flags_s": flags, "argv": argv},
        )  # fmt: skip
        print(f"results: {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
