"""Replicas sharing one database, in process (SQLite and PostgreSQL): adoption, fencing,
requests answered by a replica that does not run the task, and a remote worker's
requests forwarded to the replica that runs its attempt.

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

from tests.api.conftest import Server, create, get, running, state_of, until, wait
from tests.api.test_worker_routes import JOB, RemoteFake, Stub, bearer
from toolship.api.forward import FORWARDED_BY
from toolship.db.replicas import ReplicaStore
from toolship.db.store import make_engine
from toolship.models import TaskLog
from toolship.records import ReportAnswer, RuntimeRecord, WorkerJob, WorkerReport
from toolship.states import TaskState

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
def replica(
    server: Server, name: str, timing: dict[str, float] = FAST, **run: Any
) -> Iterator[httpx.Client]:
    """An app (engine and API) that is replica ``name`` of the server's database
    (``run``: what :meth:`Server.run` takes)."""
    server.config["server"] = {**timing, "replica": name}
    with server.run(**run) as client:
        yield client


def remote(backend: RemoteFake) -> Any:
    """The factory of an app whose backend is ``backend`` (its workers call in)."""
    return lambda _settings, _storage: backend


def gone_silent(server: Server, name: str, url: str | None = None) -> None:
    """Replica ``name`` re-registers from another host (reached at ``url``) and goes silent:
    as if killed there, its attempts left running."""
    with replicas_of(server) as rs:
        row = rs.get(name)
        assert row is not None
        assert rs.take(name, "later", "elsewhere", 1, row.token, url or "")


def test_a_dead_replicas_tasks_are_adopted_and_its_attempts_elsewhere_end(
    server: Server,
) -> None:
    with replica(server, "ghost", cpus=1) as api:
        ran = create(api, "sleep", "100")
        running(api, server.fake, ran)
        waiting = create(api, "true")
    gone_silent(server, "ghost")  # its attempt is on that host

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


def test_an_attempt_that_lives_in_no_host_resumes_on_its_adopter(server: Server) -> None:
    """A backend whose attempts any replica follows (Slurm): adoption moves them, whatever
    host the dead replica ran on, and the attempt ends as it would have, once."""
    with replica(server, "ghost", host_bound=False) as api:
        ran = create(api, "sleep", "100")
        running(api, server.fake, ran)
    gone_silent(server, "ghost")

    with replica(server, "here", host_bound=False) as api:
        details = f"/api/v1/tasks/{ran}"
        until("adoption", lambda: api.get(details).json()["replica"] == "here", timeout=10)
        running(api, server.fake, ran)  # resumed here, still its first attempt
        server.clock.advance(100)
        assert wait(api, ran) == "COMPLETE"
        task = get(api, ran)
        assert len(task["logs"]) == 1, task["logs"]
        assert not any("stopped answering" in m for m in task["logs"][0]["system_logs"] or [])


def report(number: int, state: TaskState = TaskState.RUNNING) -> str:
    sent = WorkerReport(
        state=state,
        attempt=TaskLog(start_time="2026-01-01T00:00:00Z"),
        runtime=RuntimeRecord(phase="run", executor=0, launching=0),
        attempt_number=number,
    )
    return sent.model_dump_json(exclude_none=True)


def test_a_workers_requests_reach_the_replica_that_runs_its_attempt(server: Server) -> None:
    """slurm.server_url may be the load balancer's: a replica that does not run the attempt
    forwards the worker's request (token, attempt number and all) to the one that does."""
    owner = RemoteFake()
    with replica(server, "a", real=remote(owner), listen=True) as a:
        task_id = create(a, "sleep", "100")
        owner.remote[task_id] = stub = Stub(task_id)  # attempt 2, reporting to a
        with replica(server, "b", real=remote(RemoteFake())) as b:
            r = b.get(f"{JOB}/{task_id}", params={"attempt": 2}, headers=bearer(task_id))
            assert r.status_code == 200, r.text
            assert WorkerJob.model_validate_json(r.content) == stub.job

            sent = report(2)
            r = b.post(f"{JOB}/{task_id}/report", content=sent, headers=bearer(task_id))
            assert ReportAnswer.model_validate_json(r.content) == ReportAnswer(ok=True)
            got = WorkerReport.model_validate_json(sent)
            assert stub.reports == [(got.state, got.attempt, got.runtime)]
            stub.cancel()
            r = b.post(f"{JOB}/{task_id}/report", content=sent, headers=bearer(task_id))
            assert ReportAnswer.model_validate_json(r.content) == ReportAnswer(ok=True, cancel=True)

            # The owner's refusals come back as they are; a bad token goes no further.
            r = b.post(f"{JOB}/{task_id}/report", content=report(1), headers=bearer(task_id))
            assert r.status_code == 409 and "attempt 1 of task" in r.text, r.text
            assert len(stub.reports) == 2
            r = b.get(f"{JOB}/{task_id}", headers=bearer("another"))
            assert r.status_code == 401, r.text
            # Forwarded once at most: a request that moved meanwhile is asked again.
            twice = {**bearer(task_id), FORWARDED_BY: "c"}
            r = b.get(f"{JOB}/{task_id}", headers=twice)
            assert r.status_code == 503 and "moved to replica a" in r.text, r.text


def test_a_worker_of_a_dead_replica_not_yet_adopted_is_told_to_retry(server: Server) -> None:
    """Its attempt's replica is down (stopped, or silent and unreachable) and adoption has
    not come yet: 503, which the worker retries, naming the replica."""
    slow = {"heartbeat_s": 1.0, "adopt_after_s": 60.0}  # no adoption during the test
    with replica(server, "a", slow, real=remote(RemoteFake()), listen=True) as a:
        task_id = create(a, "sleep", "100")
    with replica(server, "b", slow, real=remote(RemoteFake())) as b:
        r = b.get(f"{JOB}/{task_id}", headers=bearer(task_id))  # a stopped cleanly
        assert r.status_code == 503, r.text
        assert f"replica a, which runs task {task_id}, is down" in r.text
        assert "server.adopt_after_s (60 s)" in r.text

        dead = "http://127.0.0.1:9"  # (discard: nothing listens)
        gone_silent(server, "a", dead)  # killed: its row looks alive a while yet
        r = b.post(f"{JOB}/{task_id}/report", content=report(1), headers=bearer(task_id))
        assert r.status_code == 503, r.text
        assert f"replica a, which runs task {task_id}, did not answer at {dead}" in r.text
