"""An OpenID Connect issuer on loopback, for tests: its own keys, its discovery document, its JWKS.

Our own key pairs (``cryptography``) and a threaded ``http.server`` rather than
``oidc-provider-mock``: the tests need what a provider would never do on purpose
(tokens that expired, are for another audience, are signed with a key it then
withdraws, ``alg: none``, HS256 "signed" with its public key), and a count of the
JWKS fetches to prove the verifier's cache and its refresh on an unknown ``kid``.

It also logs in, as an authorisation server of the code flow with PKCE would:
``/authorize`` approves at once (as ``login_claims`` say, or answers ``refuse``)
and redirects back with a one-use code; ``/token`` exchanges that code for an ID
token only with the right client, redirect URI and PKCE verifier (S256).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "toolship"


@dataclass
class Key:
    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def rsa(cls, kid: str) -> Key:
        return cls(kid, "RS256", _rsa_private(kid))

    @classmethod
    def ec(cls, kid: str) -> Key:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        if isinstance(self.private, rsa.RSAPrivateKey):
            doc = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            doc = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**doc, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@functools.cache
def _rsa_private(kid: str) -> rsa.RSAPrivateKey:
    """One key pair per kid for the whole session (an RSA key takes ~0.1 s to make)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Provider:
    """The issuer at ``url``; ``keys`` are published, ``sign`` mints tokens."""

    url: str = ""
    keys: list[Key] = field(default_factory=lambda: [Key.rsa("rsa-1"), Key.ec("ec-1")])
    jwks_fetches: int = 0
    discovery_fetches: int = 0
    login_claims: dict[str, Any] = field(default_factory=dict)  # who /authorize logs in
    refuse: str = ""  # an OAuth error /authorize answers instead (e.g. access_denied)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)  # issued, not yet used
    token_requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    def claims(self, **claims: Any) -> dict[str, Any]:
        """Good claims for ``alice`` (a member of ``scientists``), overridden by ``claims``."""
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "f1c2-alice",
            "preferred_username": "alice",
            "groups": ["scientists"],
            "iat": now,
            "exp": now + 300,
        }
        base.update(claims)
        return {k: v for k, v in base.items() if v is not None}

    def sign(self, key: Key | None = None, **claims: Any) -> str:
        """A token signed by ``key`` (the first published key unless given)."""
        key = key or self.keys[0]
        return jwt.encode(
            self.claims(**claims), key.private, algorithm=key.alg, headers={"kid": key.kid}
        )

    def unsigned(self, **claims: Any) -> str:
        """``alg: none``: no signature at all."""
        return _compact({"alg": "none", "typ": "JWT"}, self.claims(**claims), lambda _: b"")

    def hs256_with_public_key(self, key: Key | None = None, **claims: Any) -> str:
        """The algorithm-confusion forgery: HMAC-SHA256 keyed with the issuer's public key.

        (pyjwt refuses to make one, so it is made here by hand.)
        """
        key = key or self.keys[0]
        header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
        secret = key.public_pem()
        return _compact(
            header, self.claims(**claims), lambda data: hmac.digest(secret, data, hashlib.sha256)
        )

    def authorize(self, query: dict[str, str]) -> str:
        """Where /authorize sends the browser back (with a code, or an error)."""
        back = query.get("redirect_uri", "")
        state = {"state": query["state"]} if "state" in query else {}
        if self.refuse:
            return f"{back}?{urlencode({'error': self.refuse, **state})}"
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return f"{back}?{urlencode({'error': 'invalid_request', **state})}"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            k: query.get(k, "") for k in ("client_id", "redirect_uri", "code_challenge", "nonce")
        }
        return f"{back}?{urlencode({'code': code, **state})}"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """/token's answer: an ID token for a good code, client, redirect URI and verifier."""
        self.token_requests.append(form)
        issued = self.codes.pop(form.get("code", ""), None)  # one use only
        if issued is None or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        if form.get("client_id") != issued["client_id"] or (
            form.get("redirect_uri") != issued["redirect_uri"]
        ):
            return 400, {"error": "invalid_grant", "error_description": "another client's code"}
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if _b64(digest) != issued["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        claims = {"aud": issued["client_id"], "nonce": issued["nonce"], **self.login_claims}
        return 200, {"id_token": self.sign(**claims), "token_type": "Bearer"}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": self.jwks_url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "id_token_signing_alg_values_supported": sorted({k.alg for k in self.keys}),
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    return head + "." + _b64(sign(head.encode()))


@contextmanager
def serve(provider: Provider | None = None) -> Iterator[Provider]:
    """Serve ``provider`` on a free loopback port for the duration of the block."""
    issuer = provider or Provider()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/authorize":
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                self.send_response(302)
                self.send_header("Location", issuer.authorize(query))
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/.well-known/openid-configuration":
                issuer.discovery_fetches += 1
                self._json(issuer.discovery())
            elif self.path == "/jwks":
                issuer.jwks_fetches += 1
                self._json({"keys": [k.jwk() for k in issuer.keys]})
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            if self.path != "/token":
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            status, doc = issuer.token(form)
            self._json(doc, status)

        def _json(self, doc: dict[str, Any], status: int = 200) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    issuer.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, args=(0.05,), name="oidc-provider", daemon=True
    )
    thread.start()
    try:
        yield issuer
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
