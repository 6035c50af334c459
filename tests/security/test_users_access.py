"""Issue 17, acceptance 1, through real HTTP: a `toolship serve` with a token file, users
alice and bob (role user) and carol (viewer) made by the admin, each with a token.

bob cannot get, list, read the logs of, download the results (provenance, crate) of,
or cancel alice's task: each a 404 exactly as for a task that does not exist, through
TES, toolship's own routes and the CLI; carol reads but cannot create; the admin
sees everything.  (Every route family in process: tests/api/test_access_*.py.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import toolship
from tests.security.shared import TOKEN, Shared, shared_server

TASKS = "/ga4gh/tes/v1/tasks"
API = "/api/v1/tasks"


def until(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(0.1)


def add_user(admin: httpx.Client, name: str, role: str) -> str:
    r = admin.post("/api/v1/users", json={"name": name, "role": role})
    assert r.status_code in (200, 201), r.text
    token: str = r.json()["token"]["token"]
    return token


def as_user(srv: Shared, token: str) -> httpx.Client:
    return httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_bob_is_answered_for_alices_task_as_for_none_through_http_and_the_cli(
    tmp_path: Path, busybox: str
) -> None:
    with shared_server(tmp_path) as srv, srv.client() as admin:
        tokens = {n: add_user(admin, n, r) for n, r in
                  (("alice", "user"), ("bob", "user"), ("carol", "viewer"))}  # fmt: skip
        alice, bob, carol = (as_user(srv, tokens[n]) for n in ("alice", "bob", "carol"))
        doc = {"executors": [{"image": busybox, "command": ["sh", "-c", "echo secret; sleep 120"]}]}
        r = alice.post(TASKS, json=doc)
        assert r.status_code == 200, r.text
        tid = r.json()["id"]
        until("alice's task prints", lambda: "secret" in alice.get(f"{API}/{tid}/logs").text)

        gone = f"no task with id {tid!r}"
        for method, path in (
            ("GET", f"{TASKS}/{tid}"),
            ("GET", f"{TASKS}/{tid}?view=FULL"),
            ("POST", f"{TASKS}/{tid}:cancel"),
            ("GET", f"{API}/{tid}"),
            ("GET", f"{API}/{tid}/logs"),
            ("GET", f"{API}/{tid}/logs?follow=true"),
            ("GET", f"{API}/{tid}/wait?timeout=0"),
            ("GET", f"{API}/{tid}/provenance"),
            ("GET", f"{API}/{tid}/crate"),
            ("POST", f"{API}/{tid}/rerun"),
        ):
            hidden = bob.request(method, path)
            missing = bob.request(method, path.replace(tid, "nosuchtask"))
            assert hidden.status_code == missing.status_code == 404, (path, hidden.text)
            assert hidden.json() == {"detail": gone}, (path, hidden.text)
            assert missing.json() == {"detail": "no task with id 'nosuchtask'"}
        assert bob.get(TASKS, params={"view": "FULL"}).json().get("tasks", []) == []
        for command in (["show", tid], ["logs", tid], ["cancel", tid]):
            r = toolship("--server", srv.url, "--token", tokens["bob"], *command)
            assert r.returncode != 0 and gone in r.stderr, (command, r.stdout, r.stderr)
        shown = toolship("--server", srv.url, "--token", tokens["alice"], "show", tid)
        assert shown.returncode == 0 and tid in shown.stdout, shown.stderr
        assert alice.get(f"{TASKS}/{tid}").json()["state"] == "RUNNING"  # bob's cancel did nothing

        # carol reads what she may see (none of alice's work), and creates nothing
        assert carol.get(TASKS).json().get("tasks", []) == []
        assert carol.get("/ga4gh/tes/v1/service-info").status_code == 200
        assert carol.get(f"{TASKS}/{tid}").json() == {"detail": gone}
        r = carol.post(TASKS, json=doc)
        assert r.status_code == 403 and "carol has the role viewer" in r.json()["detail"]
        r = toolship("--server", srv.url, "--token", tokens["carol"], "run", busybox, "--", "true")
        assert r.returncode != 0 and "needs the role user" in r.stderr, r.stderr

        # the admin (the token file's) sees and lists everything
        assert admin.get(f"{API}/{tid}").status_code == 200
        assert tid in {t["id"] for t in admin.get(TASKS).json()["tasks"]}
        r = toolship("--server", srv.url, "--token", TOKEN, "show", tid)
        assert r.returncode == 0 and tid in r.stdout, r.stderr

        assert alice.post(f"{TASKS}/{tid}:cancel").status_code == 200
        until("canceled", lambda: alice.get(f"{TASKS}/{tid}").json()["state"] == "CANCELED")

        # Who did what (admins only): the users made, alice's create and cancel, each user's
        # login; bob's and carol's refused attempts changed nothing, so left no event.
        assert bob.get("/api/v1/events").status_code == 403
        events = admin.get("/api/v1/events", params={"limit": 200}).json()["events"]
        seen = {(e["actor"], e["action"], e["target"]) for e in events}
        for user in ("alice", "bob", "carol"):
            assert ("admin", "user.add", user) in seen, seen
            assert any(e["actor"] == user and e["action"] == "login" for e in events), user
        assert ("alice", "task.create", tid) in seen and ("alice", "task.cancel", tid) in seen
        assert not any(e["actor"] in ("bob", "carol") and e["action"] != "login" for e in events)
        for client in (alice, bob, carol):
            client.close()
