"""What every page needs: the templates, the session of the request, the CSRF check.

Routes of the UI depend on :func:`viewer` (any page) or :func:`changer` (a POST:
the session's CSRF token must come with it) and render with :func:`page`.  Both
put the session's principal where the API's access checks read it
(``request.state.principal``), so a page sees and does exactly what the same
user's API requests would.

Templates are Jinja2 with autoescaping on: nothing a user or a tool wrote is
ever rendered as HTML (never mark such text ``|safe``).
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from toolship import __version__
from toolship.api.state import app_state
from toolship.errors import Forbidden, NotFound, ToolshipError
from toolship.identity import Role
from toolship.states import TaskState
from toolship.web.session import CSRF_FIELD, CSRF_HEADER, Session, sessions

__all__ = [
    "STATIC",
    "LoginRequired",
    "changer",
    "page",
    "templates",
    "viewer",
]

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
)
# Not "version": a page may have its own (a service's version), which would hide it.
templates.env.globals["toolship_version"] = __version__
templates.env.globals["states"] = [s.value for s in TaskState]


class LoginRequired(ToolshipError):
    """No valid session: pages redirect to the login page, htmx requests get a 401."""

    status_code = 401


async def viewer(request: Request) -> Session:
    """The request's session (raises LoginRequired without one)."""
    ui = sessions(request)
    session = ui.read(request)
    if session is None:
        raise LoginRequired("log in first")
    who = session.principal
    if who.via == "token":  # a user's own: disabled since, or another role now?
        users = app_state(request).users
        try:
            user = await asyncio.to_thread(users.get, who.name)
        except NotFound:
            raise LoginRequired(f"user {who.name} no longer exists") from None
        if user.disabled:
            raise LoginRequired(f"user {who.name} is disabled")
        session = Session(user.principal, session.csrf, session.expires)
    request.state.principal = session.principal
    request.state.session = session
    return session


async def changer(request: Request) -> Session:
    """The session of a request that changes something: its CSRF token must come with it."""
    session = await viewer(request)
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not sessions(request).csrf_ok(session, given):
        raise Forbidden(
            "this form was sent without its CSRF token (or with another session's): "
            "reload the page and send it again"
        )
    return session


def login_url(request: Request) -> str:
    """The login page, returning to the page asked for."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/ui/login?next={quote(target, safe='')}"


def page(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A rendered page; templates see ``session``, ``me``, ``csrf`` and ``can_run``."""
    session: Session | None = getattr(request.state, "session", None)
    me = None if session is None else session.principal
    context.update(
        request=request,
        status=status_code,
        reason=HTTPStatus(status_code).phrase,
        session=session,
        me=me,
        csrf=None if session is None else session.csrf,
        csrf_field=CSRF_FIELD,
        can_run=me is not None and me.at_least(Role.USER),
        is_admin=me is not None and me.is_admin,
        anonymous=session is not None and session.anonymous,
    )
    return templates.TemplateResponse(request, template, context, status_code=status_code)
