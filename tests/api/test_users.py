"""Users, their tokens and who did what, in process: the admin adds users (a token shown
once, stored as sha256), users prove who they are with it, revoked tokens and disabled
users are refused naming why, and every create, cancel, user and token change and login
is in the events log, readable by admins only."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner, Result
from sqlalchemy import text

from tests.api.conftest import BATCHES, TASKS, TOKEN, Server, task
from toolship import Client
from toolship.cli.context import Ctx
from toolship.cli.users import events as events_command
from toolship.cli.users import user, whoami
from toolship.db.store import make_engine

USERS = "/api/v1/users"
EVENTS = "/api/v1/events"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add(api: httpx.Client, name: str, role: str = "user", *groups: str) -> str:
    r = api.post(USERS, json={"name": name, "role": role, "groups": list(groups)})
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]["token"]
    return token


def events(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = api.get(EVENTS, params=params)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["events"]
    return found


def test_a_user_added_by_the_admin_proves_who_it_is_with_its_token(server: Server) -> None:
    with server.run() as api:
        r = api.post(USERS, json={"name": "alice", "role": "user", "groups": ["lab", "eudat"]})
        assert r.status_code == 200, r.text
        created = r.json()
        token = created["token"]["token"]
        assert created["user"]["name"] == "alice" and created["user"]["role"] == "user"
        assert created["user"]["groups"] == ["lab", "eudat"]

        me = api.get("/api/v1/me", headers=bearer(token)).json()
        assert me == {"name": "alice", "role": "user", "groups": ["lab", "eudat"], "via": "token"}
        admin = api.get("/api/v1/me").json()
        assert (admin["name"], admin["role"], admin["via"]) == ("admin", "admin", "server-token")

        listed = api.get(USERS).json()["users"]
        assert [u["name"] for u in listed] == ["alice"]
        assert token not in api.get(USERS).text  # shown once, never again
        assert listed[0]["tokens"][0]["id"] == created["token"]["id"]

        # A task created with it is alice's.
        made = api.post(TASKS, json=task(), headers=bearer(token))
        assert made.status_code == 200, made.text
    # Stored hashed: the database holds its sha256, not the token.
    engine = make_engine(server.settings().database_url)
    with engine.connect() as db:
        rows = db.execute(text("select digest from user_tokens")).all()
        assert rows == [(hashlib.sha256(token.encode()).hexdigest(),)]
        assert db.execute(text("select owner from tasks")).all() == [("alice",)]
    engine.dispose()
    if server.settings().database_url.startswith("sqlite"):
        assert token.encode() not in (server.home / "toolship.db").read_bytes()


def test_users_and_events_are_the_admins_alone(server: Server) -> None:
    with server.run() as api:
        alice = add(api, "alice", "maintainer")
        for method, path in [
            ("GET", USERS),
            ("POST", USERS),
            ("POST", f"{USERS}/alice:disable"),
            ("POST", f"{USERS}/alice/tokens"),
            ("DELETE", "/api/v1/tokens/x"),
            ("GET", EVENTS),
        ]:
            r = api.request(method, path, headers=bearer(alice), json={"name": "x"})
            assert r.status_code == 403, (method, path, r.text)
            detail = r.json()["detail"]
            assert "alice" in detail and "maintainer" in detail and "admin" in detail, detail


def test_revoked_tokens_and_disabled_users_are_refused_naming_why(server: Server) -> None:
    with server.run() as api:
        first = add(api, "bob")
        listed = api.get(f"{USERS}/bob").json()
        first_id = listed["tokens"][0]["id"]
        r = api.post(f"{USERS}/bob/tokens")
        assert r.status_code == 200, r.text
        second = r.json()["token"]["token"]
        assert api.get("/api/v1/me", headers=bearer(second)).json()["name"] == "bob"

        gone = api.delete(f"/api/v1/tokens/{first_id}")
        assert gone.status_code == 200 and gone.json()["revoked"], gone.text
        r = api.get("/api/v1/me", headers=bearer(first))
        assert r.status_code == 401
        assert "revoked" in r.json()["detail"] and "toolship user token new" in r.json()["detail"]
        assert api.get("/api/v1/me", headers=bearer(second)).status_code == 200
        # Revoking twice says so.
        assert api.delete(f"/api/v1/tokens/{first_id}").status_code == 409

        assert api.post(f"{USERS}/bob:disable").json()["disabled"] is True
        r = api.get(TASKS, headers=bearer(second))
        assert r.status_code == 401 and "bob is disabled" in r.json()["detail"], r.text
        assert api.post(f"{USERS}/bob:enable").json()["disabled"] is False
        assert api.get(TASKS, headers=bearer(second)).status_code == 200

        # A token of ours that was never issued, and one of another kind.
        r = api.get(TASKS, headers=bearer("tsh_" + "x" * 43))
        assert r.status_code == 401 and "not a token of this server" in r.json()["detail"]
        r = api.get(TASKS, headers=bearer("nope"))
        assert r.json() == {"detail": "the bearer token is not valid for this server"}


def test_bad_requests_name_the_cause_and_the_fix(server: Server) -> None:
    with server.run() as api:
        add(api, "alice")
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"name": "alice"}, 409, "user 'alice' exists"),
            ({"name": "eve", "role": "root"}, 400, "roles: viewer, user, maintainer, admin"),
            ({"name": "admin"}, 400, "server.token_file"),
            ({"name": "local"}, 400, "no authentication"),
            ({"name": "a b"}, 400, "letters, digits"),
            ({"name": "eve", "groups": ["a/b"]}, 400, "group 'a/b'"),
            ({"name": "eve", "extra": 1}, 400, "unknown field"),
        ]
        for body, status, says in cases:
            r = api.post(USERS, json=body)
            assert r.status_code == status, (body, r.text)
            assert says in r.json()["detail"], (body, r.json())
        r = api.post(f"{USERS}/nobody/tokens")
        assert r.status_code == 404 and "toolship user ls" in r.json()["detail"]
        r = api.delete("/api/v1/tokens/nothing")
        assert r.status_code == 404 and "toolship user ls" in r.json()["detail"]
        r = api.get(EVENTS, params={"page_token": "zz"})
        assert r.status_code == 400 and "next_page_token" in r.json()["detail"]


def test_users_alone_make_a_server_ask_for_a_token(server: Server) -> None:
    server.tokens = []
    with server.run() as api:
        assert api.get(TASKS).status_code == 200  # no authentication yet: the operator
        root = add(api, "root", "admin")
        r = api.get(TASKS)
        assert r.status_code == 401 and "Authorization: Bearer TOKEN" in r.json()["detail"]
        assert api.get("/api/v1/me", headers=bearer(root)).json()["role"] == "admin"
        assert api.get(USERS, headers=bearer(root)).status_code == 200
    with server.run() as api:  # and after a restart
        assert api.get(TASKS).status_code == 401
        assert api.get(TASKS, headers=bearer(root)).status_code == 200


def test_the_events_log_says_who_did_what_from_where(server: Server) -> None:
    with server.run() as api:
        alice = add(api, "alice", "user", "lab")
        as_alice = bearer(alice)
        task_id = api.post(TASKS, json=task("sleep", "100"), headers=as_alice).json()["id"]
        assert api.post(f"{TASKS}/{task_id}:cancel", headers=as_alice).status_code == 200
        body = {"template": task(), "params": [{"x": 1}, {"x": 2}]}
        batch = api.post(BATCHES, json=body, headers=as_alice).json()
        assert api.post(f"{BATCHES}/{batch['id']}:cancel", headers=as_alice).status_code == 200
        for _ in range(3):  # one login an hour, however many requests
            api.get("/api/v1/me", headers=as_alice)
        api.post(f"{USERS}/alice:disable")

        mine = events(api, actor="alice")
        assert [(e["action"], e["target"]) for e in mine] == [
            ("batch.cancel", batch["id"]),
            ("batch.create", batch["id"]),
            ("task.cancel", task_id),
            ("task.create", task_id),
            ("login", "alice"),
        ]
        assert all(e["address"] for e in mine), mine
        assert "2 tasks" in mine[1]["detail"]
        assert {e["actor"] for e in events(api, action="user")} == {"admin"}
        assert [e["action"] for e in events(api, action="user")] == ["user.disable", "user.add"]
        assert [e["target"] for e in events(api, target=task_id)] == [task_id, task_id]

        # Newest first, a page at a time.
        page = api.get(EVENTS, params={"limit": 2}).json()
        assert len(page["events"]) == 2 and page["next_page_token"]
        rest = events(api, page_token=page["next_page_token"], limit=1000)
        seqs = [e["seq"] for e in page["events"] + rest]
        assert seqs == sorted(seqs, reverse=True) and len(seqs) == len(events(api, limit=1000))


def test_token_new_and_revoke_and_user_changes_are_events(server: Server) -> None:
    with server.run() as api:
        add(api, "bob", "viewer")
        new = api.post(f"{USERS}/bob/tokens").json()["token"]
        api.delete(f"/api/v1/tokens/{new['id']}")
        api.post(f"{USERS}/bob:disable")
        api.post(f"{USERS}/bob:enable")
        got = [(e["action"], e["target"]) for e in events(api)]
        assert got == [
            ("user.enable", "bob"),
            ("user.disable", "bob"),
            ("token.revoke", new["id"]),
            ("token.new", new["id"]),
            ("user.add", "bob"),
            ("login", "admin"),
        ]
        assert new["token"] not in api.get(EVENTS).text


def test_last_used_is_recorded(server: Server) -> None:
    with server.run() as api:
        token = add(api, "carol", "viewer")
        assert api.get(f"{USERS}/carol").json()["tokens"][0]["last_used"] is None
        assert api.get(TASKS, headers=bearer(token)).status_code == 200
        used = api.get(f"{USERS}/carol").json()["tokens"][0]["last_used"]
        assert used is not None and used.endswith("Z")


# --- the SDK and the CLI ------------------------------------------------------------


def run(client: Client, *args: str) -> Result:
    """A command as `toolship ARGS…` runs it, on this client (the in-process app)."""
    command = {"user": user, "events": events_command, "whoami": whoami}[args[0]]
    ctx = Ctx(server=None, token=None, _client=client)
    return CliRunner().invoke(command, list(args[1:]), obj=ctx, catch_exceptions=False)


def test_the_cli_adds_lists_disables_users_and_shows_events(server: Server, tmp_path: Path) -> None:
    with server.run() as api:
        admin = Client("http://toolship.test", TOKEN, transport=api._transport)
        added = run(admin, "user", "add", "alice", "--role", "maintainer", "--group", "lab")
        assert added.exit_code == 0, added.output
        token = added.output.strip().splitlines()[-1]
        assert token.startswith("tsh_") and "shown this once" in added.output

        alice = Client("http://toolship.test", token, transport=api._transport)
        who = run(alice, "whoami")
        assert who.exit_code == 0 and "alice" in who.output and "maintainer" in who.output
        assert alice.whoami().groups == ["lab"]

        listed = run(admin, "user", "ls")
        assert "alice" in listed.output and "maintainer" in listed.output and "lab" in listed.output
        assert token not in listed.output
        as_json = run(admin, "user", "ls", "--json")
        assert '"name": "alice"' in as_json.output

        new = run(admin, "user", "token", "new", "alice")
        second = new.output.strip().splitlines()[-1]
        assert second.startswith("tsh_") and second != token
        token_id = admin.users()[0].tokens[0].id
        revoked = run(admin, "user", "token", "revoke", token_id)
        assert revoked.exit_code == 0 and token_id in revoked.output
        disabled = run(admin, "user", "disable", "alice")
        assert disabled.exit_code == 0 and "disabled" in disabled.output

        shown = run(admin, "events", "--user", "admin", "--action", "token")
        assert "token.revoke" in shown.output and "token.new" in shown.output
        assert "user.add" not in shown.output
        shown = run(admin, "events", "--json")
        assert '"action": "user.disable"' in shown.output
