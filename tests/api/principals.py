"""Users for in-process access tests: a token verifier of fixed principals.

The principals are what any verifier (users' tokens, OIDC) hands the routes, so the
routes' access rules are tested here apart from how a token is proven; the real
users' tokens through real HTTP are in tests/security/test_users_access.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from fastapi import Request

import toolship.api.app
from toolship.api.auth import Authenticator
from toolship.identity import Principal, Role

PRINCIPALS = {
    "alice": Principal("alice", Role.USER, ("lab",)),
    "bob": Principal("bob", Role.USER, ("lab",)),
    "carol": Principal("carol", Role.VIEWER),
    "mona": Principal("mona", Role.MAINTAINER),
    "root": Principal("root", Role.ADMIN),
}


class FixedTokens:
    """A verifier whose tokens are the principals' names (plus "-token", or not)."""

    active = True

    def __init__(self, principals: Mapping[str, Principal]) -> None:
        self.principals = principals

    async def verify(self, token: str, request: Request) -> Principal | None:
        del request
        return self.principals.get(token.removesuffix("-token"))


def with_users(
    monkeypatch: pytest.MonkeyPatch, principals: Mapping[str, Principal] = PRINCIPALS
) -> None:
    """Apps created from now on also accept the principals' tokens (an autouse fixture's)."""

    class WithUsers(Authenticator):
        def __init__(self, tokens: list[str]) -> None:
            super().__init__(tokens)
            self.verifiers.append(FixedTokens(principals))

    monkeypatch.setattr(toolship.api.app, "Authenticator", WithUsers)


def by(name: str) -> dict[str, str]:
    """Headers of a request sent by ``name``."""
    return {"Authorization": f"Bearer {name}-token"}


def missing_like(
    api: httpx.Client, name: str, method: str, path: str, real: str, absent: str, **kw: Any
) -> None:
    """``name`` is answered for the record ``real`` exactly as for a record that is not there.

    ``path`` holds ``{id}``; the reply for ``absent`` (an id no record has) with ``real``
    put in its place is the reply expected for ``real``.
    """
    hidden = api.request(method, path.format(id=real), headers=by(name), **kw)
    gone = api.request(method, path.format(id=absent), headers=by(name), **kw)
    assert gone.status_code == 404, (path, gone.text)
    assert hidden.status_code == 404, (name, method, path, hidden.status_code, hidden.text)
    assert hidden.json() == _swap(gone.json(), absent, real), (path, hidden.text, gone.text)


def _swap(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return re.sub(re.escape(old), new, value)
    if isinstance(value, dict):
        return {k: _swap(v, old, new) for k, v in value.items()}
    return value


def ids(page: dict[str, Any]) -> Iterator[str]:
    for item in page.get("tasks", page.get("batches", [])):
        yield item["id"]
