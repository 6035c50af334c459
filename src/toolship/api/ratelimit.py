"""A per-token rate limit: one token bucket per bearer token (per client address without one).

Counted before authentication, so guessing tokens and anonymous floods are limited as
well; remote workers (their own task tokens, one report per state change) and the
health check are never limited.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Buckets", "RateLimit", "exempt"]

EXEMPT_PATHS = ("/api/v1/health",)
EXEMPT_PREFIXES = ("/api/v1/worker/",)


def exempt(path: str) -> bool:
    """Is this route outside the rate limit?"""
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


class Buckets:
    """Token buckets by key: ``burst`` requests at once, then ``per_second`` on average.

    The table holds at most ``keys`` buckets; the one seen longest ago goes first (an
    idle bucket is a full one anyway), so a flood of made-up tokens costs bounded memory.
    """

    def __init__(
        self,
        per_second: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        keys: int = 65536,
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self.keys = keys
        self._table: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # level, when

    def __len__(self) -> int:
        return len(self._table)

    def take(self, key: bytes) -> float:
        """Take one token for a request: 0 if it may go, else the seconds until one is back."""
        now = self.clock()
        level, then = self._table.pop(key, (float(self.burst), now))
        level = min(float(self.burst), level + (now - then) * self.per_second)
        wait = 0.0
        if level >= 1:
            level -= 1
        else:
            wait = (1 - level) / self.per_second
        self._table[key] = (level, now)
        while len(self._table) > self.keys:
            self._table.popitem(last=False)
        return wait


def _key(scope: Scope) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, given = value.partition(b" ")
            if scheme.lower() == b"bearer" and given.strip():
                return b"t" + hashlib.sha256(given.strip()).digest()
    client = scope.get("client")
    return b"a" + (client[0] if client else "").encode()


class RateLimit:
    """Answer 429 with Retry-After to a token (or address) over its rate."""

    def __init__(self, app: ASGIApp, buckets: Buckets) -> None:
        self.app = app
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(_key(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        seconds = max(1, math.ceil(wait))
        body = json.dumps(
            {
                "detail": f"too many requests: this server allows "
                f"{self.buckets.per_second:g} requests a second per token (bursts of "
                f"{self.buckets.burst}; access.rate_limit_per_second, "
                f"access.rate_limit_burst); retry in {seconds} s, send fewer requests "
                "(wait for tasks rather than poll them, create a batch rather than many "
                "tasks), or ask the operator to raise the limit"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(seconds).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
