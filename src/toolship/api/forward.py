"""A worker's request handed on to the replica that runs its attempt (api/worker.py).

The request goes on as it came (method, path, query, body, the worker's token, which
the owner checks again), marked with :data:`FORWARDED_BY` so it is forwarded once at
most; the owner's answer comes back as it is.  When the owner does not answer, the
worker is told 503, and retries: the owner may be restarting, or about to be adopted.
"""

from __future__ import annotations

import functools
import ssl

import httpx
from fastapi import Request
from fastapi.responses import Response

from toolship.errors import ServerUnavailable

__all__ = ["FORWARDED_BY", "forward"]

FORWARDED_BY = "x-toolship-forwarded-by"  # the replica that forwarded a request
TIMEOUT = httpx.Timeout(60.0, connect=5.0)  # the worker's own timeout is 60 s
_PASSED = ("authorization", "content-type", "accept")


@functools.cache
def _tls() -> ssl.SSLContext:
    """The system's trusted CAs (SSL_CERT_FILE too), as the workers use: made once, as a
    client per request then costs a fraction of a millisecond."""
    return ssl.create_default_context()


async def forward(
    request: Request, task_id: str, me: str, owner: str, url: str, adopt_after: float
) -> Response:
    """``request`` sent by replica ``me`` to replica ``owner`` (at ``url``), which runs
    ``task_id``; its answer, or a 503 naming it."""
    headers = {k: v for k, v in request.headers.items() if k in _PASSED}
    headers[FORWARDED_BY] = me
    target = httpx.URL(url + request.url.path, query=request.url.query.encode())
    try:
        async with httpx.AsyncClient(verify=_tls(), timeout=TIMEOUT) as http:
            answer = await http.request(
                request.method, target, headers=headers, content=await request.body()
            )
    except httpx.HTTPError as exc:
        raise ServerUnavailable(
            f"replica {owner}, which runs task {task_id}, did not answer at {url} "
            f"({type(exc).__name__}: {exc}); if it is down, another replica adopts its "
            f"tasks once it has been silent for server.adopt_after_s ({adopt_after:g} s): "
            "try again"
        ) from None
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type"),
    )
