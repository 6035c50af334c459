"""Fair share measured on the real local executor (process runtime, 2 cores), in process.

alice submits 200 short tasks, bob 200 a little later (once alice's first have
started).  From bob's submission until one of them has no task left to start,
bob's share of the starts is printed and checked: about half with equal weights,
about two thirds with bob's weight 2, and with fair share off the queue is FIFO
(none of bob's tasks starts before alice's last).  The starts are the attempts'
recorded start times.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.api.conftest import Server, until
from tests.api.principals import with_users
from toolship.compute.local import LocalBackend
from toolship.config import Settings
from toolship.identity import Principal, Role
from toolship.storage import StorageRegistry
from toolship.timeutil import parse_rfc3339

# In process, FastAPI's body alias warning is let through as in tests/api (its conftest says why).
pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'alias' attribute with value:pydantic.warnings.UnsupportedFieldAttributeWarning"
)

TES = "/ga4gh/tes/v1/tasks"
EACH = 200
USERS = {
    "alice": Principal("alice", Role.USER, ("north",)),
    "bob": Principal("bob", Role.USER, ("south",)),
    "root": Principal("root", Role.ADMIN),
}


@pytest.fixture
def server(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Server:
    for key in list(os.environ):
        if key.startswith("TOOLSHIP_"):
            monkeypatch.delenv(key)
    with_users(monkeypatch, USERS)
    return Server(home=tmp_path / "home")


def local(settings: Settings, storage: StorageRegistry) -> LocalBackend:
    return LocalBackend(settings, storage)


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}"}


def submit(api: httpx.Client, who: str) -> str:
    template = {
        "executors": [{"image": "unused", "command": ["sleep", "0.02"]}],
        "resources": {"cpu_cores": 1, "ram_gb": 0.1},
    }
    body = {"template": template, "params": [{"i": str(i)} for i in range(EACH)]}
    r = api.post("/api/v1/batches", json=body, headers=as_(who), timeout=60)
    assert r.status_code == 200, r.text
    batch_id: str = r.json()["id"]
    return batch_id


def queued(api: httpx.Client, who: str) -> int:
    r = api.get("/api/v1/quota", params={"user": who}, headers=as_("root"))
    assert r.status_code == 200, r.text
    n: int = r.json()["user"]["use"]["queued_tasks"]
    return n


def starts(api: httpx.Client, who: str) -> list[datetime]:
    found: list[datetime] = []
    params: dict[str, Any] = {"view": "FULL", "page_size": 2047}
    while True:
        page = api.get(TES, params=params, headers=as_(who)).json()
        for task in page.get("tasks", []):
            logs = task.get("logs") or []
            if logs and logs[0].get("start_time"):
                found.append(parse_rfc3339(logs[0]["start_time"]))
        if not page.get("next_page_token"):
            return sorted(found)
        params["page_token"] = page["next_page_token"]


@dataclass
class Figures:
    bob: int  # bob's starts in the window
    alice: int
    share: float
    fifo: bool  # no start of bob's before alice's last

    def __str__(self) -> str:
        return (
            f"bob {self.bob} of {self.bob + self.alice} starts from his first submission until "
            f"one ran out: {self.share:.1%}"
        )


def race(server: Server, access: dict[str, Any]) -> Figures:
    server.config = {
        "local": {"runtime": "process", "accounting": False, "cpus": 2, "memory_gb": 8},
        "policy": {"runtimes": ["process"]},
        "access": access,
    }
    with server.run(local) as api:
        batches = [submit(api, "alice")]
        until("alice's first tasks start", lambda: queued(api, "alice") <= EACH - 6, 60)
        bob_from = datetime.now(UTC)
        batches.append(submit(api, "bob"))
        until("one user runs out", lambda: min(queued(api, u) for u in ("alice", "bob")) == 0, 120)
        for batch_id in batches:
            api.post(f"/api/v1/batches/{batch_id}:cancel", headers=as_("root"))
        alice, bob = starts(api, "alice"), starts(api, "bob")
        # Who did what: each user's batch, and the admin's cancels, in the log.
        log = api.get("/api/v1/events", params={"action": "batch"}, headers=as_("root"))
        seen = [(e["actor"], e["action"], e["target"]) for e in reversed(log.json()["events"])]
        assert seen == [
            ("alice", "batch.create", batches[0]), ("bob", "batch.create", batches[1]),
            ("root", "batch.cancel", batches[0]), ("root", "batch.cancel", batches[1]),
        ], seen  # fmt: skip
    # The last start of whoever ran out first; first come, first served may start none of bob's.
    until_ = min(found[-1] for found in (alice, bob) if found)
    a = sum(1 for t in alice if bob_from <= t <= until_)
    b = sum(1 for t in bob if bob_from <= t <= until_)
    return Figures(bob=b, alice=a, share=b / (a + b), fifo=not bob or bob[0] >= alice[-1])


def test_equal_users_share_the_starts_about_half_each(server: Server) -> None:
    figures = race(server, {"fair_share": True})
    print(f"\nfair share, equal weights: {figures}")
    assert 0.40 <= figures.share <= 0.60, figures


def test_bob_with_weight_two_gets_about_two_thirds(server: Server) -> None:
    figures = race(server, {"fair_share": True, "user_weights": {"bob": 2}})
    print(f"\nfair share, bob's weight 2: {figures}")
    assert 0.58 <= figures.share <= 0.76, figures


def test_without_fair_share_the_queue_is_first_come_first_served(server: Server) -> None:
    figures = race(server, {"fair_share": False})
    print(f"\nfair share off: {figures}")
    assert figures.fifo, figures
    assert figures.share <= 0.02, figures


def state(api: httpx.Client, task_id: str) -> str:
    r = api.get(f"{TES}/{task_id}", params={"view": "MINIMAL"}, headers=as_("root"))
    found: str = r.json()["state"]
    return found


def test_bob_at_his_running_cores_limit_waits_while_alice_runs_and_his_queue_is_capped(
    server: Server,
) -> None:
    """Acceptance 3 on the real executor: bob may run 1 core and keep 1 task waiting."""
    server.config = {
        "local": {"runtime": "process", "accounting": False, "cpus": 2, "memory_gb": 8},
        "policy": {"runtimes": ["process"]},
        "access": {"user_quotas": {"bob": {"running_cpus": 1, "queued_tasks": 1}}},
    }
    sleeper = {
        "executors": [{"image": "unused", "command": ["sleep", "60"]}],
        "resources": {"cpu_cores": 1, "ram_gb": 0.1},
    }
    with server.run(local) as api:

        def create(who: str) -> httpx.Response:
            return api.post(TES, json=sleeper, headers=as_(who))

        first, second = (create("bob").json()["id"] for _ in range(2))
        until("bob's first task runs", lambda: state(api, first) == "RUNNING", 30)
        r = create("bob")
        assert r.status_code == 429, r.text
        print(f"\nbob's third task: {r.status_code} {r.json()['detail']}")
        assert "at most 1 task waiting (access.user_quotas.bob.queued_tasks = 1)" in r.text
        alices = create("alice").json()["id"]
        until("alice's task runs", lambda: state(api, alices) == "RUNNING", 30)
        assert state(api, second) == "QUEUED"  # the second core is alice's; bob's limit is 1
        api.post(f"{TES}/{first}:cancel", headers=as_("root"))
        until("bob's second task runs", lambda: state(api, second) == "RUNNING", 30)
        for task_id in (second, alices):
            api.post(f"{TES}/{task_id}:cancel", headers=as_("root"))
        for task_id in (first, second, alices):  # no sleeper outlives the test
            until(f"{task_id} cancelled", lambda t=task_id: state(api, t) == "CANCELED", 30)
        # Who did what: the admin reads each action with its user (the 429 created nothing).
        events = api.get("/api/v1/events", params={"action": "task"}, headers=as_("root"))
        assert events.status_code == 200, events.text
        seen = [(e["actor"], e["action"], e["target"]) for e in reversed(events.json()["events"])]
        print("\nwho did what:", *(" ".join(e) for e in seen), sep="\n  ")
        assert seen == [
            ("bob", "task.create", first), ("bob", "task.create", second),
            ("alice", "task.create", alices), ("root", "task.cancel", first),
            ("root", "task.cancel", second), ("root", "task.cancel", alices),
        ]  # fmt: skip
        refused = api.get("/api/v1/events", headers=as_("bob"))
        assert refused.status_code == 403, "only admins read the log"
