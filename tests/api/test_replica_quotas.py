"""A user's quota is his across the replicas, not per replica (in process, SQLite and
PostgreSQL): each replica adds what the others' tasks hold, read at each heartbeat."""

from __future__ import annotations

import pytest

from tests.api.conftest import Server, state_of, until
from tests.api.principals import with_users
from tests.api.test_quotas import made, make, quota
from tests.api.test_replicas import replica


@pytest.fixture(autouse=True)
def _users(monkeypatch: pytest.MonkeyPatch) -> None:
    with_users(monkeypatch)  # alice and bob (users of lab), root (admin)


def test_bobs_task_on_a_second_replica_waits_for_his_task_on_the_first(server: Server) -> None:
    server.config = quota(running_cpus=1)
    with replica(server, "a", cpus=2) as a:
        first = made(a, "bob", "sleep", "10")
        until("bob's task runs on a", lambda: state_of(a, first) == "RUNNING")
        with replica(server, "b", cpus=2) as b:
            second = made(b, "bob", "sleep", "10")
            alices = made(b, "alice", "sleep", "10")
            until("alice's task runs on b", lambda: state_of(b, alices) == "RUNNING")
            assert state_of(b, second) == "QUEUED"  # b has a free core, bob has none
            use = b.get("/api/v1/quota", headers={"Authorization": "Bearer bob"}).json()
            assert use["user"]["use"]["running_cpus"] == 1  # what a runs for him
            assert use["user"]["use"]["queued_tasks"] == 1
            server.clock.advance(10)  # his task on a ends
            until("bob's task on b runs", lambda: state_of(b, second) == "RUNNING")
            assert b.get(f"/api/v1/tasks/{second}").json()["replica"] == "b"


def test_the_queued_task_limit_counts_the_tasks_waiting_on_every_replica(
    server: Server,
) -> None:
    server.config = quota(queued_tasks=2)
    with replica(server, "a", cpus=1) as a:
        made(a, "alice", "sleep", "10")  # holds a's only core
        for _ in range(2):
            made(a, "bob", "true")
        with replica(server, "b", cpus=1) as b:
            r = make(b, "bob", "true")
            assert r.status_code == 429, r.text
            assert "may have at most 2 tasks waiting" in r.json()["detail"]
            assert "and has 2; this request adds 1" in r.json()["detail"]
