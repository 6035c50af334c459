"""Bearer-token authentication (constant-time comparison); off when no tokens are configured."""

from __future__ import annotations

import hmac

from fastapi import Request

from toolship.errors import Unauthorized

__all__ = ["TokenAuth"]


class TokenAuth:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = [t.encode() for t in tokens]

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    # async: a plain ``def`` dependency would cost every request a hop to a worker thread.
    async def __call__(self, request: Request) -> None:
        if not self.tokens:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise Unauthorized(
                "this server needs a bearer token: send 'Authorization: Bearer TOKEN' "
                "(the CLI reads TOOLSHIP_TOKEN or --token)"
            )
        supplied = given.strip().encode()
        if not any(hmac.compare_digest(supplied, t) for t in self.tokens):
            raise Unauthorized("the bearer token is not valid for this server")
