"""Logging in and out of the web UI, and the one-time links ``toolship ui`` prints."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from toolship.api.auth import principal
from toolship.errors import Forbidden, Unauthorized
from toolship.web.pages import changer, page
from toolship.web.session import COOKIE, Session, sessions

__all__ = ["api_router", "router"]

router = APIRouter(prefix="/ui", include_in_schema=False)
# Under the API's authentication (install adds it): the CLI asks for a link with its token.
api_router = APIRouter(prefix="/api/v1/ui", include_in_schema=False)

_PRELOGIN = "toolship_login"  # double-submit cookie of the login form (no session yet)


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a page of this UI, never another site."""
    if not target:
        return "/ui/tasks"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui") or "\\" in target:
        return "/ui/tasks"
    return target


def _set_cookie(response: Response, request: Request, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _logged_in(request: Request, target: str, value: str, session: Session) -> Response:
    response = RedirectResponse(_safe_next(target), status_code=303)
    age = int(sessions(request).lifetime)
    _set_cookie(response, request, COOKIE, value, age)
    response.delete_cookie(_PRELOGIN, path="/ui")
    return response


@router.get("", response_class=HTMLResponse)
async def home() -> Response:
    return RedirectResponse("/ui/tasks", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> Response:
    ui = sessions(request)
    if not ui.needs_login:
        return RedirectResponse(_safe_next(next), status_code=303)
    nonce = secrets.token_urlsafe(16)
    response = page(request, "login.html", next=_safe_next(next), login_csrf=nonce)
    _set_cookie(response, request, _PRELOGIN, nonce, 600)
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    ui = sessions(request)
    expected = request.cookies.get(_PRELOGIN, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        raise Forbidden(
            "the login form was sent without its CSRF token: open the login page and try again"
        )
    try:
        if not token.strip():
            raise Unauthorized("paste a token: the server's, or one 'toolship user token new' made")
        who = await ui.login(token, request)
    except Unauthorized as exc:
        nonce = secrets.token_urlsafe(16)
        response = page(
            request, "login.html", status_code=401, error=exc.message, next=_safe_next(next),
            login_csrf=nonce,
        )  # fmt: skip
        _set_cookie(response, request, _PRELOGIN, nonce, 600)
        return response
    value, session = ui.issue(who)
    return _logged_in(request, next, value, session)


@router.get("/login/once")
async def login_once(request: Request, code: str = "", next: str | None = None) -> Response:
    """A one-time link of ``toolship ui``: good once, for a minute."""
    ui = sessions(request)
    who = ui.redeem(code)
    if who is None:
        raise Unauthorized(
            "this login link was used already or is over a minute old: "
            "run 'toolship ui' again for a new one, or log in with a token"
        )
    value, session = ui.issue(who)
    return _logged_in(request, next or "/ui/tasks", value, session)


@router.post("/logout")
async def logout(_session: Annotated[Session, Depends(changer)]) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@api_router.post("/links")
async def new_link(request: Request) -> JSONResponse:
    """A one-time login link for the caller (``toolship ui`` opens or prints it)."""
    code = sessions(request).link(principal(request))
    return JSONResponse({"path": f"/ui/login/once?code={code}"})
