"""The users' store and the events log on SQLite, with the store's clock in the test's hands:
a revocation made here counts at once, one made by another process within the cache's
time; last_used is written at most once a minute; action families match whole words."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from toolship.db import Store
from toolship.db.events import EventLog
from toolship.db.schema import user_tokens
from toolship.db.users import CACHE_SECONDS, USED_EVERY, UserStore
from toolship.errors import Unauthorized
from toolship.identity import Role


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    yield opened
    opened.close()


def test_a_revocation_counts_at_once_here_and_within_the_cache_time_elsewhere(
    store: Store,
) -> None:
    clock = Clock()
    here = UserStore(store.engine, clock)
    elsewhere = UserStore(store.engine, clock)  # another server process on the same database
    _, first = here.add("alice", Role.USER, ["lab"])
    second = here.new_token("alice")
    found = here.lookup(first.token)
    assert found is not None and (found.name, found.role, found.groups) == (
        "alice",
        Role.USER,
        ("lab",),
    )
    assert here.lookup("not-ours") is None  # another verifier's kind

    elsewhere.revoke(first.id)
    assert here.lookup(first.token) is not None  # remembered …
    clock.now += CACHE_SECONDS
    with pytest.raises(Unauthorized, match="revoked"):  # … for a short while only
        here.lookup(first.token)

    assert here.lookup(second.token) is not None
    here.revoke(second.id)
    with pytest.raises(Unauthorized, match="revoked"):
        here.lookup(second.token)


def test_last_used_is_written_at_most_once_a_minute(store: Store) -> None:
    clock = Clock()
    users = UserStore(store.engine, clock)
    _, issued = users.add("bob")

    def last_used() -> str | None:
        with store.engine.connect() as conn:
            value: str | None = conn.execute(select(user_tokens.c.last_used)).scalar_one()
        return value

    users.lookup(issued.token)
    first = last_used()
    assert first is not None
    clock.now += USED_EVERY - 1
    users.lookup(issued.token)
    assert last_used() == first
    clock.now += 1
    users.lookup(issued.token)
    assert (last_used() or "") > first


def test_action_families_match_whole_words_and_since_bounds_time(store: Store) -> None:
    log = EventLog(store.engine)
    log.append("alice", "task.create", "t1")
    log.append("alice", "task_x.create", "t2")  # '_' is no wildcard in a family
    log.append("bob", "tasks", "t3")
    log.append("bob", "task", "t4")
    assert [e.target for e in log.list(action="task").events] == ["t4", "t1"]
    assert [e.target for e in log.list(action="task.create").events] == ["t1"]
    assert [e.target for e in log.list(actor="bob").events] == ["t4", "t3"]
    newest = log.list(limit=1).events[0]
    recent = log.list(since=newest.time).events
    assert recent[0].target == "t4" and all(e.time >= newest.time for e in recent)
    assert log.list(since="2999-01-01T00:00:00.000000Z").events == []
