"""Three replicas on the Slurm backend behind nginx: the one that submitted a running job is
killed -9, and the job's task completes once, its job neither lost nor submitted again.

Real processes (``toolship serve`` r1, r2, r3 on one PostgreSQL database and one home), a
real nginx in front, the real local Slurm cluster.  ``slurm.server_url`` is nginx's URL:
each job's worker reaches whichever replica nginx picks, which forwards it to the replica
running the attempt.  The harness's workload (S3 staging, a batch, a dependency, a retry)
runs with a slow task; once the slow task runs, its replica is killed -9 and not started
again.  Until a replica adopts its tasks (``adopt_after_s`` = 3 s) the worker is answered
503 and retries; then its reports reach the adopter, which follows the same job.  The
harness's invariant holds for every task: one final state, each attempt run once, outputs
whole, no container left.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import require
from tests.resilience.harness import (
    PRODUCE,
    RECORD,
    SIZE,
    Bucket,
    Planned,
    Watch,
    check,
    payload,
    submit_workload,
    system_logs,
)
from tests.resilience.replicas import Nginx, Replica, start_all
from tests.security.crashing import wait_for
from toolship import Client
from toolship.db.replicas import ReplicaStore
from toolship.db.store import make_engine


def details(lb: httpx.Client, task_id: str) -> dict[str, Any]:
    found: dict[str, Any] = lb.get(f"/api/v1/tasks/{task_id}").raise_for_status().json()
    return found


def slow_task(client: Client, image: str, bucket: Bucket, runs: Path) -> Planned:
    """A task whose executor runs 8 s: long enough to outlive its replica's kill and
    adoption (3 s), and to report to the adopter."""
    name, key = "slow", "slurm-replicas/slow/result"
    make = PRODUCE.format(name=name, size=SIZE)
    steps = [RECORD.format(runs=runs), "sleep 8", "mkdir -p /work/out", make]
    made = client.submit(
        image,
        ["sh", "-c", "; ".join(steps)],
        name=name,
        outputs={"/work/out/result": f"s3://{bucket.name}/{key}"},
    )
    return Planned(name, made.id, key, payload(name))


def test_a_slurm_job_outlives_the_replica_that_submitted_it(
    on_slurm: None, bucket: Bucket, runs: Path, tmp_path: Path, postgres: Any, busybox: str
) -> None:
    url = postgres.fresh()
    env = dict(os.environ)  # the Slurm backend, the bucket, the runs folder (fixtures)
    env.update({
        "TOOLSHIP_HOME": str(tmp_path / "home"),
        "TOOLSHIP_DATABASE__URL": url,
        "TOOLSHIP_SERVER__HEARTBEAT_S": "0.5",
        "TOOLSHIP_SERVER__ADOPT_AFTER_S": "3",
    })  # fmt: skip
    rooted = os.geteuid() == 0 and shutil.which("unshare") is not None
    require(rooted, "root and unshare (a host name per replica)", "run the suite as root")
    # Each on a host of its own: the adopter is never where the dead replica was.
    replicas = [Replica(name, env, tmp_path, host=f"host-{name}") for name in ("r1", "r2", "r3")]
    nginx = Nginx(tmp_path / "nginx", [r.url for r in replicas])
    env["TOOLSHIP_SLURM__SERVER_URL"] = nginx.url  # workers reach any replica
    try:
        start_all(replicas)
        nginx.start()
        registered = ReplicaStore(make_engine(url))
        hosts = {r.name: r.host for r in registered.all()}
        registered.engine.dispose()
        assert hosts == {r.name: r.host for r in replicas}, hosts
        with (
            Watch(lambda: nginx.url, lambda: "") as watch,
            Client(nginx.url, timeout=30) as client,
            httpx.Client(base_url=nginx.url, timeout=30) as lb,
        ):
            slow = slow_task(client, busybox, bucket, runs)
            workload = submit_workload(client, busybox, bucket, runs, "slurm-replicas")
            workload.tasks[slow.name] = slow
            where = {t: details(lb, t)["replica"] for t in workload.ids}
            assert len(set(where.values())) > 1, where  # nginx spread them

            def running_job() -> str | None:
                job = (details(lb, slow.id).get("slurm") or {}).get("job_id")
                return job if client.get(slow.id).state == "RUNNING" and job else None

            job = wait_for("the slow task running as a Slurm job", running_job, 60)
            victim = next(r for r in replicas if r.name == where[slow.id])
            victim.kill()  # not started again: its tasks are adopted
            killed = time.monotonic()

            outcome = check(f"replica {victim.name} killed -9 on Slurm", client, workload,
                            bucket, runs, watch, killed)  # fmt: skip
            after = details(lb, slow.id)
            assert after["replica"] != victim.name, after["replica"]
            assert (after["slurm"] or {}).get("job_id") == job, after["slurm"]
            logs = system_logs(outcome.tasks[slow.name])
            assert logs.count("submitted to Slurm as job") == 1, logs
            assert "submitted again" not in logs and "stopped answering" not in logs, logs
            moved = [t for t, r in where.items() if r == victim.name]
            print(f"{len(moved)} tasks of {victim.name} adopted; job {job} followed by "
                  f"{after['replica']}")  # fmt: skip
    finally:
        nginx.stop()
        for r in replicas:
            r.stop()
        postgres.drop(url)
