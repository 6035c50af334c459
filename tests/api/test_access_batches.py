"""Who sees and acts on a batch, in process: get, list, report, crate, cancel, members."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import BATCHES, TASKS, Server, task, until
from tests.api.principals import by, ids, missing_like, with_users

ABSENT = "no-such-batch-000"
BATCH_ROUTES = [
    ("GET", BATCHES + "/{id}"),
    ("GET", BATCHES + "/{id}/report"),
    ("GET", BATCHES + "/{id}/crate"),
    ("POST", BATCHES + "/{id}:cancel"),
]


@pytest.fixture(autouse=True)
def _users(monkeypatch: pytest.MonkeyPatch) -> None:
    with_users(monkeypatch)


def make(api: httpx.Client, who: str, *command: str) -> tuple[str, list[str]]:
    doc = {"tasks": [task(*command), task(*command)]}
    r = api.post(BATCHES, json=doc, headers=by(who))
    assert r.status_code == 200, r.text
    return r.json()["id"], r.json()["task_ids"]


@pytest.mark.parametrize(("method", "path"), BATCH_ROUTES)
def test_bob_is_answered_for_alices_batch_as_for_none(
    server: Server, method: str, path: str
) -> None:
    with server.run() as api:
        alices, _ = make(api, "alice", "true")
        missing_like(api, "bob", method, path, alices, ABSENT)
        for who in ("alice", "root"):
            r = api.request(method, path.format(id=alices), headers=by(who))
            assert r.status_code == 200, (who, r.text)


def test_batch_listings_and_members_are_each_ones_own(server: Server) -> None:
    with server.run() as api:
        alices, alice_members = make(api, "alice", "true")
        bobs, bob_members = make(api, "bob", "true")
        for who, expected in (("alice", {alices}), ("bob", {bobs}), ("carol", set()),
                              ("root", {alices, bobs})):  # fmt: skip
            assert set(ids(api.get(BATCHES, headers=by(who)).json())) == expected, who
        # the members, as clients list them: by the batch's tag
        query = {"tag_key": "toolship.batch", "tag_value": alices}
        assert list(ids(api.get(TASKS, params=query, headers=by("bob")).json())) == []
        listed = set(ids(api.get(TASKS, params=query, headers=by("alice")).json()))
        assert listed == set(alice_members)
        assert set(bob_members).isdisjoint(listed)


def test_bob_cannot_cancel_alices_batch_and_carol_cannot_create_one(server: Server) -> None:
    with server.run() as api:
        alices, members = make(api, "alice", "sleep", "30")
        assert api.post(f"{BATCHES}/{alices}:cancel", headers=by("bob")).status_code == 404
        until("running", lambda: api.get(f"{BATCHES}/{alices}").json()["state"] == "RUNNING")
        r = api.post(BATCHES, json={"tasks": [task()]}, headers=by("carol"))
        assert r.status_code == 403 and "creating batches needs the role user" in r.text
        r = api.post(f"{BATCHES}/{alices}:cancel", headers=by("carol"))
        assert r.status_code == 403 and "carol has the role viewer" in r.text
        r = api.post(f"{BATCHES}/{alices}:cancel", headers=by("alice"))
        assert r.status_code == 200 and r.json()["canceled"] == len(members)
