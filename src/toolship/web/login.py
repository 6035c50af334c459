"""Logging in and out of the web UI, and the one-time links ``toolship ui`` prints.

With ``access.oidc.client_id`` set, the login page also offers the issuer's own
login: the authorisation code flow with PKCE (RFC 7636, S256) for a public
client.  The state, nonce and code verifier travel in a signed cookie of the
login path (``SameSite=Lax``: the issuer's redirect back is a cross-site
navigation); the answer's ``state`` must match it, the code is exchanged at the
issuer's token endpoint with the verifier, and the ID token is verified as
bearer JWTs are (signature by the issuer's JWKS, issuer, expiry) with the
client id as audience and the nonce of this login.  The redirect URI to
register with the issuer is ``<server URL>/ui/login/oidc/callback``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from toolship.api.auth import principal
from toolship.errors import Forbidden, ServerUnavailable, Unauthorized
from toolship.web.pages import changer, page
from toolship.web.session import COOKIE, Session, sessions

__all__ = ["api_router", "router"]

router = APIRouter(prefix="/ui", include_in_schema=False)
# Under the API's authentication (install adds it): the CLI asks for a link with its token.
api_router = APIRouter(prefix="/api/v1/ui", include_in_schema=False)

_PRELOGIN = "toolship_login"  # double-submit cookie of the login form (no session yet)
_FLOW = "toolship_oidc"  # the OIDC login under way: state, nonce, PKCE verifier, next page
_FLOW_SECONDS = 600


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
    return _login_form(request, next=_safe_next(next))


def _login_form(
    request: Request, *, next: str, error: str | None = None, status_code: int = 200
) -> Response:
    """The login page, with a fresh double-submit CSRF cookie."""
    ui = sessions(request)
    nonce = secrets.token_urlsafe(16)
    issuer = None if ui.oidc is None else ui.oidc.settings.issuer
    response = page(
        request, "login.html", status_code=status_code, error=error, next=next,
        login_csrf=nonce, issuer=issuer,
    )  # fmt: skip
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
        return _login_form(request, next=_safe_next(next), error=exc.message, status_code=401)
    value, session = ui.issue(who)
    return _logged_in(request, next, value, session)


def _callback_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ui/login/oidc/callback"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@router.get("/login/oidc")
async def login_oidc(request: Request, next: str | None = None) -> Response:
    """Off to the issuer's login (authorisation code + PKCE)."""
    ui = sessions(request)
    if ui.oidc is None:
        raise Unauthorized(
            "this server has no OIDC login (access.oidc.issuer and access.oidc.client_id): "
            "log in with a token"
        )
    authorize, _ = await ui.oidc.endpoints()
    flow = {
        "state": secrets.token_urlsafe(24),
        "nonce": secrets.token_urlsafe(24),
        "verifier": secrets.token_urlsafe(48),  # 64 characters: RFC 7636 asks 43-128
        "next": _safe_next(next),
    }
    query = {
        "response_type": "code",
        "client_id": ui.oidc.settings.client_id,
        "redirect_uri": _callback_url(request),
        "scope": "openid profile",
        "state": flow["state"],
        "nonce": flow["nonce"],
        "code_challenge": _challenge(flow["verifier"]),
        "code_challenge_method": "S256",
    }
    response = RedirectResponse(f"{authorize}?{urlencode(query)}", status_code=303)
    response.set_cookie(
        _FLOW, ui.sign(flow, _FLOW_SECONDS, _FLOW), max_age=_FLOW_SECONDS, path="/ui/login",
        httponly=True, samesite="lax", secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.get("/login/oidc/callback")
async def login_oidc_callback(
    request: Request,
    code: str = "",
    state: str = "",
    error: str = "",
    error_description: str = "",
) -> Response:
    """The issuer's answer: the code is exchanged (with the PKCE verifier) for an ID token."""
    ui = sessions(request)
    flow = ui.unsign(request.cookies.get(_FLOW, ""), _FLOW)
    if ui.oidc is None or flow is None:
        return _login_form(
            request, next="/ui/tasks", status_code=401,
            error="this login took over ten minutes or did not start here: log in again",
        )  # fmt: skip
    target = str(flow["next"])
    if error:
        why = f"{error}: {error_description}" if error_description else error
        return _login_form(
            request, next=target, status_code=401,
            error=f"{ui.oidc.settings.issuer} refused the login ({why})",
        )  # fmt: skip
    if not state or not hmac.compare_digest(state.encode(), str(flow["state"]).encode()):
        return _login_form(
            request, next=target, status_code=401,
            error="the issuer's answer does not belong to this login (its state differs): "
            "log in again",
        )  # fmt: skip
    try:
        id_token = await _exchange(request, code, str(flow["verifier"]))
        who = await ui.oidc.login(id_token, str(flow["nonce"]))
    except (Unauthorized, ServerUnavailable) as exc:
        return _login_form(request, next=target, status_code=401, error=exc.message)
    value, _ = ui.issue(who)
    # A page, not a redirect: the navigation that came from the issuer is cross-site, so a
    # SameSite=Strict cookie set now is sent only from a navigation of this site's own.
    response = page(request, "logged_in.html", next=_safe_next(target))
    _set_cookie(response, request, COOKIE, value, int(ui.lifetime))
    response.delete_cookie(_FLOW, path="/ui/login")
    return response


async def _exchange(request: Request, code: str, verifier: str) -> str:
    """The ID token the issuer gives for ``code`` and the PKCE ``verifier``."""
    ui = sessions(request)
    assert ui.oidc is not None
    _, token_url = await ui.oidc.endpoints()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": _callback_url(request),
        "client_id": ui.oidc.settings.client_id,
        "code_verifier": verifier,
    }
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            answer = await http.post(token_url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as e:
        raise ServerUnavailable(
            f"could not reach the issuer's token endpoint {token_url} ({e}): log in again later"
        ) from None
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if answer.status_code != 200:
        detail = body.get("error_description") or body.get("error")
        raise Unauthorized(
            f"the issuer's token endpoint refused the login code ({answer.status_code}"
            f"{': ' + str(detail) if detail else ''}): log in again"
        )
    id_token = body.get("id_token")
    if not isinstance(id_token, str):
        raise Unauthorized(f"{token_url} answered without an ID token: is 'openid' a scope?")
    return id_token


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
