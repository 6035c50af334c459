"""Who did what: :func:`record` (what routes call after an action), logins, and the
admins' reading of the log (``GET /api/v1/events``).

An event names the principal that acted, the action, its target and the client's
address.  A login is the first request of a principal from an address in an hour
(per way of proving it: a user's token, an OIDC JWT, the server's token), so the log
says who came from where without a line per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from toolship.api.auth import principal
from toolship.api.state import app_state
from toolship.db.events import event_row
from toolship.errors import Forbidden, InvalidRequest
from toolship.identity import Principal
from toolship.models import ErrorResponse, EventInfo, EventList
from toolship.timeutil import parse_rfc3339

__all__ = ["Logins", "address", "admin_only", "audit", "record", "router"]

router = APIRouter(prefix="/api/v1", tags=["users"])

LOGIN_EVERY = 3600.0  # seconds: one login event per principal, way and address


def address(request: Request) -> str:
    return request.client.host if request.client else ""


def record(request: Request, action: str, target: str = "", detail: str = "") -> None:
    """Add to the log that the request's principal did ``action`` on ``target``."""
    app_state(request).events.append(
        principal(request).name, action, target, address(request), detail
    )


def audit(request: Request, action: str, detail: str = "") -> Callable[[str], dict[str, str]]:
    """The event of ``action`` by the request's principal on a target not known yet (a
    task's id), for the store to write with what it stores."""
    actor, where = principal(request).name, address(request)
    return lambda target: event_row(actor, action, target, where, detail)


def admin_only(request: Request, what: str) -> Principal:
    """The request's principal, if an admin; else a 403 that says who may."""
    who = principal(request)
    if not who.is_admin:
        raise Forbidden(
            f"{what} is for admins; {who.name} is a {who.role.label}: ask an admin "
            "(or give the user the admin role: `toolship user add NAME --role admin`)"
        )
    return who


class Logins:
    """A dependency after the Authenticator's: a login event once an hour per principal,
    way and address."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seen: dict[tuple[str, str, str], float] = {}

    async def __call__(self, request: Request) -> None:
        who = principal(request)
        if who.via == "none":  # no authentication configured: nothing was proven
            return
        key = (who.via, who.name, address(request))
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last < LOGIN_EVERY:
            return
        if len(self._seen) > 10_000:
            self._seen = {k: t for k, t in self._seen.items() if now - t < LOGIN_EVERY}
        self._seen[key] = now
        record(request, "login", who.name, f"via {who.via}")


def _utc(text: str) -> str:
    """A time as the log writes it (UTC, microseconds, Z), so text order is time order."""
    try:
        when = parse_rfc3339(text)
    except ValueError:
        raise InvalidRequest(
            f"since={text!r} is not a time: give RFC 3339, e.g. 2026-01-31T12:00:00Z"
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


@router.get(
    "/events",
    operation_id="ListEvents",
    response_model=EventList,
    responses={403: {"model": ErrorResponse, "description": "The caller is not an admin"}},
)
async def list_events(
    request: Request,
    actor: Annotated[str | None, Query(description="Only this user's")] = None,
    action: Annotated[
        str | None,
        Query(description="Only this action (task.create), or a family of them (task)"),
    ] = None,
    target: Annotated[str | None, Query(description="Only on this task, batch, user…")] = None,
    since: Annotated[str | None, Query(description="Only from this time on (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    page_token: str | None = None,
) -> JSONResponse:
    """Who did what, newest first: creates, cancels, builds, deprecations, user and token
    changes, logins (admins only)."""
    admin_only(request, "the events log")
    page = app_state(request).events.list(
        actor=actor,
        action=action,
        target=target,
        since=None if since is None else _utc(since),
        limit=limit,
        page_token=page_token,
    )
    reply = EventList(
        events=[EventInfo.model_validate(e, from_attributes=True) for e in page.events],
        next_page_token=page.next_token,
    )
    return JSONResponse(reply.model_dump(mode="json"))
