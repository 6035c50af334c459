"""Who sent a request: bearer tokens (the server's, users' own) and OIDC JWTs.

Every protected route depends on :class:`Authenticator`, which puts the
request's :class:`~toolship.identity.Principal` on ``request.state``; routes read
it with :func:`principal`.  Tokens of ``server.token_file`` (and the embedded
server's own) are the server admin's; after them each :class:`Verifier` is asked
in turn (users' tokens in the database, JWTs of the OIDC issuer).  A server
with no way to authenticate at all (loopback, no tokens, no users, no OIDC)
treats every request as its operator's (:data:`~toolship.identity.ANONYMOUS`).
"""

from __future__ import annotations

import hmac
from typing import Protocol

from fastapi import Request

from toolship.errors import Unauthorized
from toolship.identity import ANONYMOUS, SERVER_ADMIN, Principal

__all__ = ["Authenticator", "Verifier", "bearer", "principal"]


class Verifier(Protocol):
    @property
    def active(self) -> bool:
        """Does it accept anything now (users exist, an issuer is configured)?"""
        ...

    async def verify(self, token: str, request: Request) -> Principal | None:
        """The token's principal; None: not one of its kind (the next verifier is asked).

        Raises Unauthorized for a token of its kind that is not good (expired, revoked…).
        """
        ...


def bearer(request: Request) -> str | None:
    """The bearer token of the request, if it sent one."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    return given.strip()


class Authenticator:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = [t.encode() for t in tokens]
        self.verifiers: list[Verifier] = []  # added once the app's store is open

    @property
    def enabled(self) -> bool:
        """Is a credential asked for (else every request is the operator's)?"""
        return bool(self.tokens) or any(v.active for v in self.verifiers)

    # async: a plain ``def`` dependency would cost every request a hop to a worker thread.
    async def __call__(self, request: Request) -> None:
        request.state.principal = await self.identify(request)

    async def identify(self, request: Request) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        given = bearer(request)
        if given is None:
            raise Unauthorized(
                "this server needs a bearer token: send 'Authorization: Bearer TOKEN' "
                "(the CLI reads TOOLSHIP_TOKEN or --token)"
            )
        return await self.verify(given, request)

    async def verify(self, given: str, request: Request) -> Principal:
        """The principal of a token (the web UI's login checks a pasted one so)."""
        supplied = given.encode()
        if any(hmac.compare_digest(supplied, t) for t in self.tokens):
            return SERVER_ADMIN
        for verifier in self.verifiers:
            if verifier.active:
                found = await verifier.verify(given, request)
                if found is not None:
                    return found
        raise Unauthorized("the bearer token is not valid for this server")


def principal(request: Request) -> Principal:
    """Who sent the request (set by the Authenticator of protected routes)."""
    found: Principal = getattr(request.state, "principal", ANONYMOUS)
    return found
