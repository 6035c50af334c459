"""Who is using the web UI: a signed session cookie, its CSRF token, one-time login links.

A user logs in by pasting a bearer token the server takes (the server's own, a
user's own, an OIDC access token); the token is checked by the API's
:class:`~toolship.api.auth.Authenticator` and never stored.  The cookie then
carries the principal (name, role, groups), an expiry and a random nonce, signed
(HS256, pyjwt) with a key of the server's home (``ui.key``, mode 0600, made on
first use).  It is ``HttpOnly``, ``SameSite=Strict`` and ``Secure`` when the
request came over TLS.

CSRF: every form and every htmx request that changes something sends the
session's CSRF token (an HMAC of its nonce) as the field ``csrf`` or the header
``X-CSRF-Token``; a POST without it, or with another session's, is a 403.

A user of a server that asks for no credential at all (loopback, no tokens, no
users) is its operator, as in the API, and never sees the login page.

``toolship ui`` asks the server (an admin route) for a one-time login link: a
random code, good once, for a minute, that logs the browser in as the CLI's
principal without the token ever being part of a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from fastapi import Request

from toolship.api.auth import Authenticator
from toolship.api.oidc import OidcVerifier
from toolship.identity import ANONYMOUS, Principal, Role

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "Session",
    "Sessions",
    "sessions",
]

COOKIE = "toolship_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
KEY_FILE = "ui.key"
_ALGORITHM = "HS256"
_SESSION = "session"  # the use of a session cookie's claims (the OIDC login's are another)
_LINK_SECONDS = 60.0


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str  # the token every changing request sends back
    expires: float  # UNIX time
    anonymous: bool = False  # a server without authentication: no login, no cookie


@dataclass
class Sessions:
    """Issues and checks session cookies and one-time login links of one server."""

    home: Path
    auth: Authenticator
    oidc: OidcVerifier | None = None  # logs in with the issuer when its client_id is set
    lifetime: float = 8 * 3600.0
    _key: bytes = b""
    _links: dict[str, tuple[Principal, float]] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        """The home's ``ui.key`` (made, 0600, on first use: the home exists once serving)."""
        if not self._key:
            path = self.home / KEY_FILE
            try:
                self._key = path.read_bytes()
            except FileNotFoundError:
                key = secrets.token_bytes(32)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(key)
                self._key = key
        return self._key

    @property
    def needs_login(self) -> bool:
        return self.auth.enabled

    def csrf_of(self, nonce: str) -> str:
        return hmac.new(self.key, f"csrf:{nonce}".encode(), hashlib.sha256).hexdigest()

    def issue(self, who: Principal) -> tuple[str, Session]:
        """A cookie value for ``who`` and the session it stands for."""
        nonce = secrets.token_urlsafe(16)
        expires = time.time() + self.lifetime
        claims: dict[str, Any] = {
            "sub": who.name,
            "role": who.role.label,
            "groups": list(who.groups),
            "via": who.via,
            "nonce": nonce,
        }
        value = self.sign(claims, self.lifetime, _SESSION)
        return value, Session(who, self.csrf_of(nonce), expires)

    def read(self, request: Request) -> Session | None:
        """The request's session (None: not logged in, expired, or a forged cookie)."""
        if not self.needs_login:
            return Session(ANONYMOUS, self.csrf_of("anonymous"), float("inf"), anonymous=True)
        value = request.cookies.get(COOKIE)
        if not value:
            return None
        claims = self.unsign(value, _SESSION)
        if claims is None:
            return None
        try:
            role = Role[str(claims["role"]).upper()]
            who = Principal(
                str(claims["sub"]), role, tuple(str(g) for g in claims["groups"]), claims["via"]
            )
            return Session(who, self.csrf_of(str(claims["nonce"])), float(claims["exp"]))
        except (KeyError, TypeError, ValueError):
            return None

    async def login(self, token: str, request: Request) -> Principal:
        """The principal of a pasted token (raises Unauthorized, saying why, when it is bad)."""
        return await self.auth.verify(token.strip(), request)

    def link(self, who: Principal) -> str:
        """A one-time login code for ``who``, good for a minute."""
        now = time.monotonic()
        self._links = {c: v for c, v in self._links.items() if v[1] > now}
        code = secrets.token_urlsafe(24)
        self._links[code] = (who, now + _LINK_SECONDS)
        return code

    def redeem(self, code: str) -> Principal | None:
        """The principal of a one-time code, once (None: unknown, used or expired)."""
        found = self._links.pop(code, None)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def sign(self, claims: dict[str, Any], seconds: float, use: str) -> str:
        """``claims`` signed with the UI's key for ``use`` only, good for ``seconds``."""
        stamped = {**claims, "use": use, "exp": int(time.time() + seconds)}
        return jwt.encode(stamped, self.key, _ALGORITHM)

    def unsign(self, value: str, use: str) -> dict[str, Any] | None:
        """What :meth:`sign` signed for ``use`` (None: forged, expired, missing, another use)."""
        try:
            claims: dict[str, Any] = jwt.decode(value, self.key, algorithms=[_ALGORITHM])
        except jwt.PyJWTError:
            return None
        return claims if claims.get("use") == use else None

    def csrf_ok(self, session: Session, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())


def sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.ui_sessions
    return found
