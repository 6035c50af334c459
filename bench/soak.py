"""Soak: replicas on one PostgreSQL behind nginx, kept busy while one is killed -9 in turn.

    .venv/bin/python -m bench.soak [--replicas 3] [--tasks 1000 | --minutes 10]
                                   [--kill-every 30] [--adopt-after 3]

Starts ``--replicas`` ``toolship serve`` processes on a fresh database of the PostgreSQL
server of ``scripts/postgres.sh`` and one shared home, behind nginx (the pieces of
tests/resilience/replicas.py).  A steady stream of short busybox tasks goes through
nginx's one URL, single creates and batches of five, one in four writing an output to
S3 (moto); the backlog is kept at ``--window`` unfinished tasks per replica.  Every
``--kill-every`` seconds one replica, chosen in turn, is killed -9 and started again at
once under its name, as systemd would.  Meanwhile GetTask and the health endpoint are
timed through nginx, side by side.

At the end every task the database holds is checked with the resilience harness's
invariant (tests/resilience/harness.py): one final state, reached through valid
transitions; no attempt run twice (each appends a line to a shared file); every output
whole; no container left.  Prints tasks done, lost, duplicated, by final state; each
kill's recovery time (kill to every task the replica held final); latencies; each
replica's memory at start and end; throughput.  Writes bench/results/soak-<N>r-<amount>.json.
Exits 1 if a task was lost or ran twice, or the invariant broke.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from tests.postgres import databases
from tests.resilience.harness import (
    PRODUCE,
    RECORD,
    SIZE,
    Bucket,
    Watch,
    _check_states,
    moto_bucket,
    payload,
    run_counts,
    runs_folder,
)
from tests.resilience.replicas import Nginx, Replica, start_all, until_healthy

from bench.common import BUSYBOX, write_result
from toolship import Client, ServerUnavailable
from toolship.db.schema import tasks
from toolship.db.store import make_engine
from toolship.states import FINAL_STATES, TaskState

TES = "/ga4gh/tes/v1"
FINAL = [s.value for s in FINAL_STATES]
BATCH = 5  # members of each batch; batches alternate with single creates


def rss_mib(replica: Replica) -> float:
    """The replica process's resident memory now (VmRSS), in MiB."""
    assert replica.proc is not None
    for line in Path(f"/proc/{replica.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(xs: list[float], q: float) -> float:
    """The q-th percentile (0-100) in milliseconds; 0 for no samples."""
    if len(xs) < 2:
        return xs[0] * 1000 if xs else 0.0
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1] * 1000


@dataclass
class Submitter:
    """The stream of tasks through nginx: a window of unfinished tasks per replica."""

    client: Client
    db: Engine
    image: str
    bucket: Bucket
    runs: Path
    outputs: dict[str, str] = field(default_factory=dict)  # task id -> name, for outputs
    submitted: int = 0
    errors: int = 0

    def command(self, name: str, output: bool, seconds: int) -> list[str]:
        steps = [RECORD.format(runs=self.runs), f"sleep {seconds}"]
        if output:
            steps += ["mkdir -p /work/out", PRODUCE.format(name=name, size=SIZE)]
        return ["sh", "-c", "; ".join(steps)]

    def unfinished(self) -> int:
        with self.db.connect() as conn:
            q = select(func.count()).select_from(tasks).where(tasks.c.state.not_in(FINAL))
            return int(conn.execute(q).scalar_one())

    def one_more(self, n: int, room: float) -> None:
        """Submit the n-th submission: a single task, or a batch of ``BATCH`` every other
        while ``room`` (tasks still to submit) allows."""
        output = n % 4 == 0
        batch = n % 2 == 1 and room >= BATCH
        name = "{name}" if batch else f"s{n}"  # a batch fills in each member's name
        extra: dict[str, Any] = {}
        if output:
            extra["outputs"] = {"/work/out/result": f"s3://{self.bucket.name}/soak/{name}"}
        command = self.command(name, output, n % 3)
        if batch:
            names = [f"s{n}-m{i}" for i in range(BATCH)]
            made = self.client.sweep(self.image, command, {"name": names}, name=name, **extra)
            ids = made.task_ids
        else:
            names = [name]
            ids = [self.client.submit(self.image, command, name=name, **extra).id]
        if output:
            self.outputs.update(zip(ids, names, strict=True))
        self.submitted += len(ids)

    def run(self, room: Any, window: int, stop: threading.Event) -> None:
        """Submit while ``room(submitted)`` (tasks still to submit) is positive, keeping
        the backlog under ``window``."""
        for n in itertools.count():
            while not stop.is_set() and self.unfinished() >= window:
                time.sleep(0.2)
            if stop.is_set() or room(self.submitted) <= 0:
                return
            try:
                self.one_more(n, room(self.submitted))
            except (httpx.HTTPError, ServerUnavailable):
                # A replica died under the request (nginx: 502): its answer is lost, the
                # tasks may be stored all the same (the check reads every stored task).
                self.errors += 1
                time.sleep(0.2)


@dataclass
class Prober:
    """GetTask and health, timed through nginx, side by side, until stopped."""

    url: str
    samples: dict[str, list[float]] = field(default_factory=lambda: {"get": [], "health": []})
    failed: Counter[str] = field(default_factory=Counter)

    def run(self, db: Engine, stop: threading.Event) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not stop.wait(0.05):
                with db.connect() as conn:
                    last = conn.execute(select(tasks.c.id).order_by(tasks.c.seq.desc())).first()
                if last is None:
                    continue
                self._time(http, "get", f"{TES}/tasks/{last[0]}")
                self._time(http, "health", "/api/v1/health")

    def _time(self, http: httpx.Client, what: str, path: str) -> None:
        t0 = time.perf_counter()
        try:
            http.get(path).raise_for_status()
        except httpx.HTTPError:
            self.failed[what] += 1
            return
        self.samples[what].append(time.perf_counter() - t0)


@dataclass
class Killer:
    """kill -9 one replica in turn every ``every`` s, restart it at once under its name;
    each kill's recovery: until every task the replica held at the kill is final."""

    replicas: list[Replica]
    every: float
    db: Engine
    kills: list[dict[str, Any]] = field(default_factory=list)
    _watchers: list[threading.Thread] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        for n in itertools.count():
            if stop.wait(self.every):
                return
            victim = self.replicas[n % len(self.replicas)]
            with self.db.connect() as conn:
                held = [r[0] for r in conn.execute(select(tasks.c.id).where(
                    tasks.c.replica == victim.name, tasks.c.state.not_in(FINAL)))]  # fmt: skip
            killed = time.monotonic()
            victim.kill()
            victim.launch()
            until_healthy(victim.url, victim.proc, victim.log, 60)
            back = round(time.monotonic() - killed, 2)
            kill = {"replica": victim.name, "held": len(held), "restarted_s": back,
                    "recovery_s": None}  # fmt: skip
            self.kills.append(kill)
            watcher = threading.Thread(target=self._recovery, args=(kill, held, killed))
            watcher.start()
            self._watchers.append(watcher)

    def _recovery(self, kill: dict[str, Any], held: list[str], killed: float) -> None:
        deadline = killed + 600
        while time.monotonic() < deadline:
            with self.db.connect() as conn:
                left = conn.execute(select(func.count()).select_from(tasks).where(
                    tasks.c.id.in_(held), tasks.c.state.not_in(FINAL))).scalar_one()  # fmt: skip
            if left == 0:
                kill["recovery_s"] = round(time.monotonic() - killed, 2)
                return
            time.sleep(0.2)

    def join(self) -> None:
        for w in self._watchers:
            w.join()


@contextlib.contextmanager
def cluster(n: int, url: str, work: Path, args: argparse.Namespace) -> Iterator[list[Replica]]:
    """``n`` replicas on database ``url`` and one home in ``work``, started; stopped after."""
    env = dict(os.environ)
    env.update({
        "TOOLSHIP_HOME": str(work / "home"),
        "TOOLSHIP_DATABASE__URL": url,
        "TOOLSHIP_SERVER__HEARTBEAT_S": str(args.adopt_after / 3),
        "TOOLSHIP_SERVER__ADOPT_AFTER_S": str(args.adopt_after),
    })  # fmt: skip
    replicas = [Replica(f"r{i + 1}", env, work) for i in range(n)]
    try:
        start_all(replicas)
        yield replicas
    finally:
        for r in replicas:
            r.stop()


def census(db: Engine) -> dict[str, str]:
    """Every task the database holds, and its state."""
    with db.connect() as conn:
        return {r.id: r.state for r in conn.execute(select(tasks.c.id, tasks.c.state))}


def settle(db: Engine, timeout: float) -> dict[str, str]:
    """The census once nothing is left unfinished, or at ``timeout`` (the rest are lost)."""
    deadline = time.monotonic() + timeout
    while True:
        found = census(db)
        if all(s in FINAL for s in found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def task_containers() -> list[str]:
    """The task ids of every container podman holds (one call, not one per task)."""
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", "label=io.toolship.task",
         "--format", '{{index .Labels "io.toolship.task"}}'],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.split()


def broken(states: dict[str, str], watch: Watch, sub: Submitter) -> list[str]:
    """The harness's checks that are not counts: transitions, outputs, containers."""
    problems = []
    for task_id, state in states.items():
        if state not in FINAL:
            continue
        try:
            _check_states(f"task {task_id}", watch.seen.get(task_id, []), TaskState(state))
        except AssertionError as exc:
            problems.append(str(exc))
        name = sub.outputs.get(task_id)
        whole = (
            name is None or state != "COMPLETE" or sub.bucket.read(f"soak/{name}") == payload(name)
        )
        if not whole:
            problems.append(f"task {task_id} ({name}): output missing or partial")
    left = [t for t in task_containers() if t in states]
    if left:
        problems.append(f"tasks that left containers behind: {left}")
    return problems


def soak(args: argparse.Namespace, work: Path, bucket: Bucket, runs: Path) -> dict[str, Any]:
    """One run: start, load, kill, settle, check; the figures."""
    dbs = databases()
    url = dbs.fresh()
    db = make_engine(url)
    try:
        with cluster(args.replicas, url, work, args) as replicas:
            nginx = Nginx(work / "nginx", [r.url for r in replicas])
            nginx.start()
            try:
                return load(args, replicas, nginx, db, bucket, runs)
            finally:
                nginx.stop()
    finally:
        db.dispose()
        dbs.drop(url)
        dbs.close()


def load(
    args: argparse.Namespace,
    replicas: list[Replica],
    nginx: Nginx,
    db: Engine,
    bucket: Bucket,
    runs: Path,
) -> dict[str, Any]:
    rss_start = {r.name: round(rss_mib(r), 1) for r in replicas}
    stop, done = threading.Event(), threading.Event()
    client = Client(nginx.url, timeout=30)
    sub = Submitter(client, db, args.image, bucket, runs)
    prober, killer = Prober(nginx.url), Killer(replicas, args.kill_every, db)
    began = time.monotonic()
    if args.minutes:
        room = lambda _: math.inf if time.monotonic() - began < args.minutes * 60 else 0  # noqa: E731
    else:
        room = lambda submitted: args.tasks - submitted  # noqa: E731
    helpers = [threading.Thread(target=prober.run, args=(db, done))]
    if args.kill_every:
        helpers.append(threading.Thread(target=killer.run, args=(done,)))
    watch = Watch(lambda: nginx.url, lambda: "")
    with watch:
        for h in helpers:
            h.start()
        sub.run(room, args.window * args.replicas, stop)
        states = settle(db, timeout=300 + 10 * args.adopt_after)
        elapsed = time.monotonic() - began
        done.set()
        for h in helpers:
            h.join()
        killer.join()
        time.sleep(0.3)  # one more poll of the watch: final states must not move
    client.close()
    rss_end = {r.name: round(rss_mib(r), 1) for r in replicas}
    starts = {r.name: r.starts for r in replicas}
    counts = run_counts(runs)
    twice = sorted({t for (t, _), n in counts.items() if n > 1})
    by_state = Counter(states.values())
    lost = sorted(t for t, s in states.items() if s not in FINAL)
    return {
        "replicas": args.replicas,
        "kill_every_s": args.kill_every,
        "adopt_after_s": args.adopt_after,
        "tasks": len(states),
        "done": len(states) - len(lost),
        "lost": lost,
        "duplicated": twice,
        "by_state": dict(by_state),
        "rerun_attempts": sum(1 for (_, a) in counts if a > 1),
        "problems": broken(states, watch, sub),
        "submit_errors": sub.errors,
        "kills": killer.kills,
        "latency_ms": {
            what: {
                "p50": round(percentile(xs, 50), 1),
                "p99": round(percentile(xs, 99), 1),
                "n": len(xs),
                "failed": prober.failed[what],
            }
            for what, xs in prober.samples.items()
        },
        "rss_mib": {"start": rss_start, "end": rss_end},
        "starts": starts,
        "seconds": round(elapsed, 1),
        "tasks_per_s": round((len(states) - len(lost)) / elapsed, 2),
    }


def report(r: dict[str, Any]) -> None:
    print(
        f"{r['replicas']} replica(s) behind nginx on one PostgreSQL, kill -9 every "
        f"{r['kill_every_s'] or 'never'} s, adopt_after_s {r['adopt_after_s']:g}"
    )
    print(
        f"tasks: {r['tasks']} stored, {r['done']} done (final), {len(r['lost'])} lost "
        f"(never final), {len(r['duplicated'])} duplicated (an attempt ran twice); "
        f"by final state {r['by_state']}; {r['rerun_attempts']} attempts after a first; "
        f"{r['submit_errors']} submissions whose answer was lost (sent again)"
    )
    for k in r["kills"]:
        rec = "NOT recovered" if k["recovery_s"] is None else f"recovered in {k['recovery_s']} s"
        print(f"  kill -9 {k['replica']}: holding {k['held']} unfinished, back up in "
              f"{k['restarted_s']} s, its tasks all final: {rec}")  # fmt: skip
    times = [k["recovery_s"] for k in r["kills"] if k["recovery_s"] is not None]
    if times:
        print(f"kills: {len(r['kills'])}, recovery median {statistics.median(times):.1f} s, "
              f"worst {max(times):.1f} s")  # fmt: skip
    for what, lat in r["latency_ms"].items():
        label = "GetTask via nginx" if what == "get" else "health via nginx "
        print(f"{label}: p50 {lat['p50']} ms, p99 {lat['p99']} ms "
              f"({lat['n']} requests, {lat['failed']} failed)")  # fmt: skip
    for name, start in r["rss_mib"]["start"].items():
        end, starts = r["rss_mib"]["end"][name], r["starts"][name]
        print(f"RSS {name}: {start} MiB at start, {end} MiB at end (started {starts} times)")
    print(f"throughput: {r['tasks_per_s']} tasks/s ({r['done']} tasks in {r['seconds']} s, "
          f"{r['tasks_per_s'] / r['replicas']:.2f} per replica)")  # fmt: skip
    for p in r["problems"][:20]:
        print(f"INVARIANT BROKEN: {p}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3)
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--tasks", type=int, default=100, help="tasks to submit in all")
    amount.add_argument("--minutes", type=float, help="keep submitting for this long instead")
    parser.add_argument("--kill-every", type=float, default=0, help="seconds; 0: no kills")
    parser.add_argument("--adopt-after", type=float, default=3.0, help="server.adopt_after_s")
    parser.add_argument("--window", type=int, default=10, help="unfinished tasks per replica")
    parser.add_argument("--image", default=BUSYBOX)
    args = parser.parse_args()
    with (
        pytest.MonkeyPatch.context() as env,
        tempfile.TemporaryDirectory(prefix="toolship-soak-") as tmp,
        moto_bucket(env, "soak") as bucket,
        runs_folder(env) as runs,
    ):
        result = soak(args, Path(tmp), bucket, runs)
    report(result)
    amount = f"{args.minutes:g}min" if args.minutes else f"{args.tasks}tasks"
    write_result(f"soak-{args.replicas}r-{amount}", {**result, "lost": len(result["lost"]),
                                           "duplicated": len(result["duplicated"])})  # fmt: skip
    if result["lost"] or result["duplicated"] or result["problems"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
