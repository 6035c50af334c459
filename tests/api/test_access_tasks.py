"""Who sees and acts on a task, in process: TES, toolship's task routes, reruns, provenance.

alice and bob are users, carol a viewer, root an admin (tests/api/principals.py).
In the default mode (owner-or-admin) bob is answered for alice's task exactly as
for a task that does not exist, on every route; the admin sees it all.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import TASKS, Server, task, until, wait
from tests.api.principals import by, ids, missing_like, with_users

API = "/api/v1/tasks"
ABSENT = "no-such-task-0000"

# (method, path, query): every route that names one task
TASK_ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", TASKS + "/{id}", {}),
    ("GET", TASKS + "/{id}", {"view": "BASIC"}),
    ("GET", TASKS + "/{id}", {"view": "FULL"}),
    ("GET", "/v1/tasks/{id}", {"view": "FULL"}),
    ("POST", TASKS + "/{id}:cancel", {}),
    ("POST", "/v1/tasks/{id}:cancel", {}),
    ("GET", API + "/{id}", {}),
    ("GET", API + "/{id}/wait", {"timeout": 0}),
    ("GET", API + "/{id}/logs", {}),
    ("GET", API + "/{id}/logs", {"stream": "stderr", "follow": "true"}),
    ("GET", API + "/{id}/provenance", {}),
    ("GET", API + "/{id}/crate", {}),
    ("POST", API + "/{id}/rerun", {}),
    ("GET", API + "/{id}/verify", {}),
    ("GET", API + "/{id}/sbom", {}),
]


@pytest.fixture(autouse=True)
def _users(monkeypatch: pytest.MonkeyPatch) -> None:
    with_users(monkeypatch)


def make(api: httpx.Client, who: str, *command: str) -> str:
    r = api.post(TASKS, json=task(*command), headers=by(who))
    assert r.status_code == 200, r.text
    task_id: str = r.json()["id"]
    return task_id


@pytest.mark.parametrize(("method", "path", "query"), TASK_ROUTES)
def test_bob_is_answered_for_alices_task_as_for_none(
    server: Server, method: str, path: str, query: dict[str, Any]
) -> None:
    with server.run() as api:
        alices = make(api, "alice", "echo", "hi")
        assert wait(api, alices) == "COMPLETE"
        missing_like(api, "bob", method, path, alices, ABSENT, params=query)
        for who in ("alice", "root"):
            r = api.request(method, path.format(id=alices), params=query, headers=by(who))
            assert r.status_code != 404 or "no task with id" not in r.text, (who, r.text)


def test_verify_against_alices_task_is_a_404_for_bob(server: Server) -> None:
    with server.run() as api:
        alices, bobs = make(api, "alice", "true"), make(api, "bob", "true")
        r = api.get(f"{API}/{bobs}/verify", params={"against": alices}, headers=by("bob"))
        assert r.status_code == 404 and r.json() == {"detail": f"no task with id {alices!r}"}


def test_listings_show_each_their_own_and_the_admins_everything(server: Server) -> None:
    with server.run() as api:
        alices = {make(api, "alice", "true") for _ in range(3)}
        bobs = {make(api, "bob", "true")}
        for view in ("MINIMAL", "BASIC", "FULL"):
            for who, expected in (("alice", alices), ("bob", bobs), ("carol", set()),
                                  ("root", alices | bobs)):  # fmt: skip
                for base in (TASKS, "/v1/tasks"):
                    r = api.get(base, params={"view": view}, headers=by(who))
                    assert set(ids(r.json())) == expected, (who, view, base)
        # paging never shows another's task either
        page = api.get(TASKS, params={"page_size": 1}, headers=by("bob")).json()
        assert list(ids(page)) == list(bobs) and "next_page_token" not in page
        assert set(ids(api.get(TASKS).json())) == alices | bobs  # the server's token: admin


def test_bob_cannot_cancel_alices_running_task(server: Server) -> None:
    with server.run() as api:
        alices = make(api, "alice", "sleep", "30")
        until("running", lambda: api.get(f"{TASKS}/{alices}").json()["state"] == "RUNNING")
        r = api.post(f"{TASKS}/{alices}:cancel", headers=by("bob"))
        assert r.status_code == 404
        assert api.get(f"{TASKS}/{alices}").json()["state"] == "RUNNING"
        assert api.post(f"{TASKS}/{alices}:cancel", headers=by("alice")).status_code == 200
        assert wait(api, alices) == "CANCELED"


def test_a_viewer_reads_but_may_not_create_cancel_or_rerun(server: Server) -> None:
    server.config = {"access": {"mode": "all"}}
    with server.run() as api:
        alices = make(api, "alice", "true")
        wait(api, alices)
        assert api.get(f"{TASKS}/{alices}", headers=by("carol")).status_code == 200
        assert set(ids(api.get(TASKS, headers=by("carol")).json())) == {alices}
        for method, path in (("POST", TASKS), ("POST", f"{TASKS}/{alices}:cancel"),
                             ("POST", f"{API}/{alices}/rerun"),
                             ("POST", f"{TASKS}/{ABSENT}:cancel")):  # fmt: skip
            body = task("true") if path == TASKS else None
            r = api.request(method, path, json=body, headers=by("carol"))
            assert r.status_code == 403, (path, r.text)
            detail = r.json()["detail"]
            assert "carol has the role viewer" in detail and "role user or higher" in detail
            assert "ask an admin" in detail


def test_in_mode_all_everyone_sees_and_users_act_on_everything(server: Server) -> None:
    server.config = {"access": {"mode": "all"}}
    with server.run() as api:
        alices = make(api, "alice", "sleep", "30")
        assert set(ids(api.get(TASKS, headers=by("bob")).json())) == {alices}
        assert api.get(f"{API}/{alices}", headers=by("bob")).status_code == 200
        assert api.post(f"{TASKS}/{alices}:cancel", headers=by("bob")).status_code == 200
        assert wait(api, alices) == "CANCELED"


def test_in_mode_owner_even_an_admin_sees_only_its_own(server: Server) -> None:
    server.config = {"access": {"mode": "owner"}}
    with server.run() as api:
        alices = make(api, "alice", "true")
        roots = make(api, "root", "true")
        missing_like(api, "root", "GET", TASKS + "/{id}", alices, ABSENT)
        assert set(ids(api.get(TASKS, headers=by("root")).json())) == {roots}
        assert set(ids(api.get(TASKS, headers=by("alice")).json())) == {alices}


def test_bob_cannot_wait_for_alices_task_as_a_parent(server: Server) -> None:
    with server.run() as api:
        alices = make(api, "alice", "sleep", "30")
        after = task(resources={"backend_parameters": {"after": alices}})
        r = api.post(TASKS, json=after, headers=by("bob"))
        assert r.status_code == 400 and f"no task with id {alices!r}" in r.text, r.text
        assert api.post(TASKS, json=after, headers=by("alice")).status_code == 200
        r = api.post("/api/v1/batches", json={"tasks": [after]}, headers=by("bob"))
        assert r.status_code == 400 and f"no task with id {alices!r}" in r.text, r.text
