"""Replicas sharing one database, in process (SQLite and PostgreSQL): adoption, fencing,
and requests answered by a replica that does not run the task.

The real thing (three ``toolship serve`` processes behind nginx, one killed -9) is
tests/resilience/test_replicas.py; here the fake backend lets each rule be seen alone.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.api.conftest import Server, create, get, running, state_of, until
from toolship.db.replicas import ReplicaStore
from toolship.db.store import make_engine

FAST = {"heartbeat_s": 0.05, "adopt_after_s": 0.2}


@contextmanager
def replicas_of(server: Server) -> Iterator[ReplicaStore]:
    """The replicas' rows, read and written as another server would."""
    engine = make_engine(server.settings().database_url)
    try:
        yield ReplicaStore(engine)
    finally:
        engine.dispose()


@contextmanager
def replica(server: Server, name: str, **backend: Any) -> Iterator[httpx.Client]:
    """An app (engine and API) that is replica ``name`` of the server's database."""
    server.config["server"] = {**FAST, "replica": name}
    with server.run(**backend) as client:
        yield client


def test_a_dead_replicas_tasks_are_adopted_and_its_attempts_elsewhere_end(
    server: Server,
) -> None:
    with replica(server, "ghost", cpus=1) as api:
        ran = create(api, "sleep", "100")
        running(api, server.fake, ran)
        waiting = create(api, "true")
    # The ghost re-registers from another host and goes silent: its attempt is there.
    with replicas_of(server) as rs:
        ghost = rs.get("ghost")
        assert ghost is not None
        assert rs.take("ghost", "later", "elsewhere", 1, ghost.token)

    with replica(server, "here") as api, replicas_of(server) as rs:
        until("adoption", lambda: state_of(api, ran) == "SYSTEM_ERROR", timeout=10)
        logs = get(api, ran)["logs"][-1]["system_logs"]
        assert any("replica ghost (host elsewhere) stopped answering" in m for m in logs), logs
        until("the queued task run here", lambda: state_of(api, waiting) == "COMPLETE")
        details = api.get(f"/api/v1/tasks/{waiting}").json()
        assert details["replica"] == "here"
        assert rs.get("ghost") is None  # its row went with its tasks


def test_any_replica_cancels_and_waits_for_another_replicas_task(server: Server) -> None:
    with replica(server, "a") as a:
        task_id = create(a, "sleep", "100")
        running(a, server.fake, task_id)
        fake_a = server.fake
        with replica(server, "b") as b:
            assert b.get(f"/api/v1/tasks/{task_id}").json()["replica"] == "a"
            child = create(b, "true", resources={"backend_parameters": {"after": task_id}})
            assert b.post(f"/ga4gh/tes/v1/tasks/{task_id}:cancel").status_code == 200
            r = b.get(f"/api/v1/tasks/{task_id}/wait", params={"timeout": 10})
            assert r.json() == {"id": task_id, "state": "CANCELED", "final": True}
            assert task_id not in fake_a.sleeping()
            # Its child, on b, learns that its parent ended on a.
            until("the child failed", lambda: state_of(b, child) == "SYSTEM_ERROR")


def test_a_replica_whose_row_is_taken_over_stops(server: Server) -> None:
    """Fencing: adopted while it still ran, the replica stops at once (SIGTERM to itself)."""
    got = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: got.set())
    try:
        with replica(server, "fenced") as api, replicas_of(server) as rs:
            row = rs.get("fenced")
            assert row is not None and row.host == socket.gethostname()
            assert rs.take("fenced", "usurper", "elsewhere", 1, row.token)
            until("the server told to stop", got.is_set, timeout=10)
            created = create(api, "true")  # the API still answers until the server exits
            assert state_of(api, created) == "QUEUED"
    finally:
        signal.signal(signal.SIGTERM, previous)
