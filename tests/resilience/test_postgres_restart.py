"""PostgreSQL restarted under load: the server's database goes away and comes back.

A PostgreSQL cluster of this test's own (scripts/postgres.sh with its own folder and
port: the shared one on 5433 is never restarted), restarted while the workload runs.
A request while it is down is answered 503 naming the database (never a 500); once it
is back every task completes as if nothing had happened.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.resilience.harness import TES, Bucket, check, reports_waiting, session, submit_workload
from tests.security.crashing import Server, wait_for

# Not the shared cluster (127.0.0.1:5433): this one is restarted.
CLUSTER = {"TOOLSHIP_POSTGRES_DIR": "/tmp/toolship-postgres-faults",
           "TOOLSHIP_POSTGRES_PORT": "5434"}  # fmt: skip


def postgres(command: str) -> str:
    done = subprocess.run(
        [str(ROOT / "scripts" / "postgres.sh"), command],
        env={**os.environ, **CLUSTER}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"postgres.sh {command}: {done.stdout}{done.stderr}"
    return done.stdout.strip()


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database on a cluster of this test's own, stopped afterwards."""
    from tests.postgres import Databases

    url = postgres("start").removeprefix("postgres ready: ")
    dbs = Databases(url)
    fresh = dbs.fresh()
    monkeypatch.setenv("TOOLSHIP_DATABASE__URL", fresh)
    try:
        yield fresh
    finally:
        postgres("stop")


def test_postgres_restarted_under_load(
    database: str, bucket: Bucket, runs: Path, crashable: Server, busybox: str
) -> None:
    server = crashable.start()
    doc = {"executors": [{"image": busybox, "command": ["true"]}]}
    with session(server) as s:
        workload = submit_workload(s.client, busybox, bucket, runs, "pg")
        postgres("stop")
        refused = s.http.post(f"{TES}/tasks", json=doc)
        assert refused.status_code == 503, refused.text
        assert "the database postgresql+psycopg://toolship:***@127.0.0.1:5434/" in refused.text
        wait_for("the tasks' reports meeting the outage", lambda: reports_waiting(crashable.home))
        postgres("start")
        cleared = time.monotonic()
        wait_for("the server writing again",
                 lambda: s.http.post(f"{TES}/tasks", json=doc).status_code == 200)  # fmt: skip
        check("PostgreSQL restarted", s.client, workload, bucket, runs, s.watch, cleared)
