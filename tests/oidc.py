"""An OpenID Connect issuer on loopback, for tests: its own keys, its discovery document, its JWKS.

Our own key pairs (``cryptography``) and a threaded ``http.server`` rather than
``oidc-provider-mock``: the tests need what a provider would never do on purpose
(tokens that expired, are for another audience, are signed with a key it then
withdraws, ``alg: none``, HS256 "signed" with its public key), and a count of the
JWKS fetches to prove the verifier's cache and its refresh on an unknown ``kid``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
            if self.path == "/.well-known/openid-configuration":
                issuer.discovery_fetches += 1
                self._json(issuer.discovery())
            elif self.path == "/jwks":
                issuer.jwks_fetches += 1
                self._json({"keys": [k.jwk() for k in issuer.keys]})
            else:
                self.send_error(404)

        def _json(self, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(200)
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
