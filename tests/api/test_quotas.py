"""Quotas through the API, in process: a user's tasks wait at his running limit, a 429
beyond his queued-task limit and a 400 beyond his batch size, each naming the limit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.api.conftest import TASKS, Server, state_of, task, until
from tests.api.principals import with_users
from toolship.cli.context import Ctx
from toolship.cli.quota import quota as quota_command
from toolship.client import Client
from toolship.errors import Forbidden


@pytest.fixture(autouse=True)
def _users(monkeypatch: pytest.MonkeyPatch) -> None:
    with_users(monkeypatch)  # alice and bob (users of lab), root (admin)


def make(api: httpx.Client, who: str, *command: str) -> httpx.Response:
    return api.post(TASKS, json=task(*command), headers={"Authorization": f"Bearer {who}"})


def made(api: httpx.Client, who: str, *command: str) -> str:
    r = make(api, who, *command)
    assert r.status_code == 200, r.text
    task_id: str = r.json()["id"]
    return task_id


def quota(**bob: Any) -> dict[str, Any]:
    return {"access": {"user_quotas": {"bob": bob}}}


def test_bobs_second_task_waits_at_his_running_cores_limit_while_alices_runs(
    server: Server,
) -> None:
    server.config = quota(running_cpus=1)
    with server.run(cpus=2) as api:
        first = made(api, "bob", "sleep", "10")
        until("bob's first task runs", lambda: state_of(api, first) == "RUNNING")
        second = made(api, "bob", "sleep", "10")
        alices = made(api, "alice", "sleep", "10")
        until("alice's task runs", lambda: state_of(api, alices) == "RUNNING")
        assert state_of(api, second) == "QUEUED"  # a core is free, but not for bob
        server.clock.advance(10)
        until("bob's second task runs", lambda: state_of(api, second) == "RUNNING")


def test_a_task_beyond_the_queued_task_limit_is_a_429_naming_limit_and_use(
    server: Server,
) -> None:
    server.config = quota(queued_tasks=2)
    with server.run(cpus=1) as api:
        made(api, "alice", "sleep", "10")  # holds the only core
        for _ in range(2):
            made(api, "bob", "true")
        r = make(api, "bob", "true")
        assert r.status_code == 429, r.text
        assert r.json()["detail"] == (
            "queued-task quota: user bob may have at most 2 tasks waiting "
            "(access.user_quotas.bob.queued_tasks = 2) and has 2; this request adds 1. "
            "Wait until some start, cancel some, or ask an admin to raise it"
        )
        assert make(api, "alice", "true").status_code == 200  # alice has no such limit


def test_a_batch_beyond_the_batch_size_or_the_queued_limit_is_refused(server: Server) -> None:
    server.config = quota(batch_size=3, queued_tasks=4)
    with server.run(cpus=1) as api:
        bob = {"Authorization": "Bearer bob"}
        sweep = {"template": task("echo", "{i}"), "params": [{"i": str(i)} for i in range(4)]}
        r = api.post("/api/v1/batches", json=sweep, headers=bob)
        assert r.status_code == 400, r.text
        assert "access.user_quotas.bob.batch_size = 3); this batch has 4" in r.json()["detail"]
        made(api, "alice", "sleep", "10")
        sweep["params"] = sweep["params"][:3]
        assert api.post("/api/v1/batches", json=sweep, headers=bob).status_code == 200
        r = api.post("/api/v1/batches", json=sweep, headers=bob)
        assert r.status_code == 429, r.text
        assert "has 3; this request adds 3" in r.json()["detail"]


def test_a_task_bigger_than_the_running_limit_is_refused_at_once(server: Server) -> None:
    server.config = quota(running_cpus=1)
    with server.run(cpus=4) as api:
        body = task("true", resources={"cpu_cores": 2})
        r = api.post(TASKS, json=body, headers={"Authorization": "Bearer bob"})
        assert r.status_code == 400, r.text
        assert "asks for 2 cores but user bob may run at most 1 at once" in r.json()["detail"]


def test_quota_shows_limits_and_use_to_the_user_and_to_admins_only(server: Server) -> None:
    server.config = {
        "access": {
            "user_quotas": {"bob": {"running_cpus": 1, "queued_tasks": 5}},
            "group_quotas": {"lab": {"running_cpus": 2}},
            "user_weights": {"bob": 2},
        }
    }
    with server.run(cpus=2) as api:
        first = made(api, "bob", "sleep", "10")
        until("bob's task runs", lambda: state_of(api, first) == "RUNNING")
        made(api, "bob", "sleep", "10")
        r = api.get("/api/v1/quota", headers={"Authorization": "Bearer bob"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["user"]["name"] == "bob"
        assert body["user"]["setting"] == "access.user_quotas.bob"
        assert body["user"]["running_cpus"] == 1
        assert body["user"]["use"] == {
            "running_cpus": 1, "running_memory_gb": 2, "running_gpus": 0, "queued_tasks": 1
        }  # fmt: skip
        assert body["group"]["name"] == "lab"
        assert body["group"]["use"]["running_cpus"] == 1
        assert body["fair_share"]["weight"] == 2
        r = api.get(
            "/api/v1/quota", params={"user": "bob"}, headers={"Authorization": "Bearer alice"}
        )
        assert r.status_code == 403
        assert "only admins see another user's quota" in r.json()["detail"]
        r = api.get(
            "/api/v1/quota", params={"user": "bob"}, headers={"Authorization": "Bearer root"}
        )
        assert r.json()["user"]["use"]["queued_tasks"] == 1


def test_toolship_quota_prints_limits_use_and_fair_share(server: Server) -> None:
    server.config = quota(running_cpus=1, queued_tasks=5)
    with server.run(cpus=2) as api:
        made(api, "bob", "sleep", "10")

        def cli(who: str, *args: str) -> str:
            client = Client("http://toolship.test", who, transport=api._transport)
            ctx = Ctx(server=None, token=None, _client=client)
            result = CliRunner().invoke(quota_command, list(args), obj=ctx, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.output

        until("bob's task counted", lambda: "running cores" in cli("bob") and " 1 " in cli("bob"))
        out = cli("bob")
        assert "user bob" in out and "group lab" in out and "no limit" in out
        assert "limits from: access.user_quotas.bob" in out
        assert "fair share: usage" in out and "weight 1" in out
        assert '"queued_tasks": 5' in cli("root", "bob", "--json")
        alice = Client("http://toolship.test", "alice", transport=api._transport)
        with pytest.raises(Forbidden, match="only admins see another user's quota"):
            alice.quota("bob")


def test_a_task_naming_another_slurm_account_than_its_owners_is_a_400(server: Server) -> None:
    server.config = {"access": {"slurm_accounts": {"bob": "proj-bob"}}}
    with server.run() as api:
        body = task("true", resources={"backend_parameters": {"account": "proj-alice"}})
        r = api.post(TASKS, json=body, headers={"Authorization": "Bearer bob"})
        assert r.status_code == 400, r.text
        assert "charged to Slurm account 'proj-bob' (access.slurm_accounts.bob)" in r.text
