"""Bearer JWTs of an OpenID Connect issuer: verified with pyjwt, mapped to a principal.

The issuer's keys come from its JWKS (``access.oidc.jwks_url``, else the
``jwks_uri`` of its discovery document), fetched by pyjwt's ``PyJWKClient`` in a
worker thread, kept ``jwks_cache_seconds`` and fetched again early when a token
names a key the set lacks (a rotation) — at most once per cooldown, so tokens
with made-up ``kid``s cannot make this server hammer the issuer.  A token must
carry the configured issuer and audience, an expiry and a subject, within
``leeway_seconds`` of clock skew, and be signed with one of the configured
asymmetric algorithms by the key its ``kid`` names; ``none`` and HMAC are refused
whatever the settings say (an HS256 token "signed" with the issuer's public key
is the classic forgery).  Settings that would weaken this stop the server at
start-up.  Claims map to a user name, groups, and a role by group (README,
"Many users").
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from fastapi import Request
from jwt.algorithms import requires_cryptography

from toolship.config import OidcSettings
from toolship.errors import ConfigError, ServerUnavailable, Unauthorized
from toolship.identity import ANONYMOUS, SERVER_ADMIN, Principal, Role, parse_role
from toolship.storage.egress import is_loopback_host

__all__ = ["OidcVerifier", "principal_from_claims"]

# What pyjwt verifies with public keys (RSA, RSA-PSS, ECDSA, EdDSA): all it may use here.
ASYMMETRIC = frozenset(requires_cryptography)
# A user name is an owner and may be a path segment (storage.allowed_roots "/data/{user}").
_NAME = re.compile(r"[A-Za-z0-9_@+-][A-Za-z0-9._@+-]{0,127}")
_RESERVED = frozenset({ANONYMOUS.name, SERVER_ADMIN.name})
_ROLE_SETTINGS = (
    (Role.ADMIN, "admin_groups"),
    (Role.MAINTAINER, "maintainer_groups"),
    (Role.USER, "user_groups"),
    (Role.VIEWER, "viewer_groups"),
)
_REQUIRED = ["exp", "iss", "sub"]  # and aud: an audience is always configured


class OidcVerifier:
    """The :class:`~toolship.api.auth.Verifier` of JWTs from ``access.oidc.issuer``."""

    def __init__(
        self,
        settings: OidcSettings,
        *,
        cooldown_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.algorithms = _checked(settings) if settings.issuer else ()
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._timeout = timeout
        self._client: jwt.PyJWKClient | None = None
        self._document: dict[str, Any] | None = None  # the discovery document, once read
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def active(self) -> bool:
        return bool(self.settings.issuer)

    async def verify(self, token: str, request: Request) -> Principal | None:
        claims = await self.claims(token, self.settings.audience)
        return None if claims is None else principal_from_claims(claims, self.settings)

    async def login(self, id_token: str, nonce: str) -> Principal:
        """Who an ID token of the web UI's login says (audience: the UI's client id)."""
        claims = await self.claims(id_token, self.settings.client_id)
        if claims is None:
            raise Unauthorized(f"{self.settings.issuer} answered the login without an ID token")
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise Unauthorized(
                "the ID token's nonce is not the one this login asked for (a replayed or "
                "injected answer): log in again"
            )
        return principal_from_claims(claims, self.settings)

    async def endpoints(self) -> tuple[str, str]:
        """The issuer's authorization and token endpoints (its discovery document)."""
        doc = await self._discovery()
        found = []
        for name in ("authorization_endpoint", "token_endpoint"):
            url = doc.get(name)
            problem = _url_problem(url) if isinstance(url, str) else "it names none"
            if problem:
                raise ServerUnavailable(
                    f"the {name} of {self.settings.issuer}'s discovery document is not "
                    f"usable: {problem}; the web UI cannot log in with this issuer"
                )
            found.append(str(url))
        return found[0], found[1]

    async def claims(self, token: str, audience: str) -> dict[str, Any] | None:
        """The verified claims of a JWT for ``audience`` (None: not a JWT at all)."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None  # not a JWT: a user's own token, or nothing at all
        alg = header.get("alg")
        self._check_algorithm(alg)
        issuer = self.settings.issuer
        if unverified.get("iss") != issuer:
            raise Unauthorized(
                f"the token's issuer {unverified.get('iss')!r} is not the one this server "
                f"trusts ({issuer!r}, access.oidc.issuer): sign in with that issuer"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized(
                "the token names no signing key (no 'kid' in its header): this server "
                f"verifies only tokens signed with a key of {issuer}'s JWKS"
            )
        key = await self._key(kid)
        return self._decode(token, key, str(alg), unverified, audience)

    def _check_algorithm(self, alg: object) -> None:
        accepted = ", ".join(self.algorithms)
        if not isinstance(alg, str) or not alg:
            raise Unauthorized(f"the token names no algorithm: this server accepts {accepted}")
        if alg.lower() == "none":
            raise Unauthorized(
                f"the token is not signed (alg 'none'): this server accepts only tokens "
                f"signed by {self.settings.issuer} with {accepted}"
            )
        if alg.upper().startswith("HS"):
            raise Unauthorized(
                f"the token is signed with HMAC ({alg}), which this server never accepts "
                "(a shared secret, or the issuer's public key used as one, could forge it): "
                f"use a token from {self.settings.issuer} signed with {accepted}"
            )
        if alg not in self.algorithms:
            raise Unauthorized(
                f"the token's algorithm {alg!r} is not one this server accepts ({accepted}, "
                "access.oidc.algorithms): ask the issuer for such a token, or an admin to add it"
            )

    def _decode(
        self, token: str, key: jwt.PyJWK, alg: str, unverified: dict[str, Any], audience: str
    ) -> dict[str, Any]:
        s = self.settings
        fresh = f"get a fresh token from {s.issuer} (sign in again)"
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=s.issuer,
                leeway=s.leeway_seconds,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized(
                f"the token expired at {_when(unverified.get('exp'))} ({s.leeway_seconds} s of "
                f"clock skew allowed, access.oidc.leeway_seconds): {fresh}"
            ) from None
        except jwt.ImmatureSignatureError:
            start = unverified.get("nbf", unverified.get("iat"))
            raise Unauthorized(
                f"the token is not valid before {_when(start)}: if that is now, the clocks of "
                "this server and the issuer disagree (allowed: access.oidc.leeway_seconds = "
                f"{s.leeway_seconds} s)"
            ) from None
        except jwt.MissingRequiredClaimError as e:
            raise Unauthorized(
                f"the token has no {e.claim!r} claim: this server accepts only tokens with "
                "exp, iss, sub and aud; ask the issuer for an ID or access token in JWT form"
            ) from None
        except jwt.InvalidAudienceError:
            aud = unverified.get("aud")
            given = [aud] if isinstance(aud, str) else aud
            setting = "audience" if audience == s.audience else "client_id"
            raise Unauthorized(
                f"the token's audience {given} is not this server's (access.oidc.{setting} = "
                f"{audience!r}): get a token issued for {audience!r}"
            ) from None
        except jwt.InvalidIssuerError:
            raise Unauthorized(
                f"the token's issuer is not the one this server trusts ({s.issuer!r}, "
                "access.oidc.issuer): sign in with that issuer"
            ) from None
        except jwt.InvalidSignatureError:
            raise Unauthorized(
                f"the token's signature does not match the issuer's key {key.key_id!r}: it was "
                f"altered or not signed by {s.issuer}; {fresh}"
            ) from None
        except jwt.InvalidAlgorithmError:
            raise Unauthorized(
                f"the token's algorithm {alg!r} does not fit the issuer's key {key.key_id!r} "
                f"(a {key.algorithm_name} key): {fresh}"
            ) from None
        except jwt.PyJWTError as e:
            raise Unauthorized(f"the token is not valid ({e}): {fresh}") from None
        return claims

    async def _key(self, kid: str) -> jwt.PyJWK:
        client = await self._jwks_client()
        keys = _cached_keys(client)
        if keys is None:
            keys = await self._fetch(client, refresh=False)
        key = jwt.PyJWKClient.match_kid(keys, kid)
        refreshed = False
        if key is None and self._may_refresh():
            keys = await self._fetch(client, refresh=True)
            key = jwt.PyJWKClient.match_kid(keys, kid)
            refreshed = True
        if key is None:
            again = (
                "even after fetching them again"
                if refreshed
                else f"fetched again at most every {self._cooldown:g} s"
            )
            raise Unauthorized(
                f"the token's signing key {kid!r} is not among the issuer's keys ({client.uri}, "
                f"{again}): it was not signed by {self.settings.issuer}, or with a key since "
                "withdrawn; get a fresh token"
            )
        return key

    def _may_refresh(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._cooldown

    async def _fetch(self, client: jwt.PyJWKClient, *, refresh: bool) -> list[jwt.PyJWK]:
        async with self._lock:
            # Another request may have fetched them while this one waited.
            keys = _cached_keys(client)
            if keys is not None and (not refresh or not self._may_refresh()):
                return keys
            source = (
                "access.oidc.jwks_url"
                if self.settings.jwks_url
                else "access.oidc.issuer (its discovery document names this jwks_uri)"
            )
            try:
                found: list[jwt.PyJWK] = await asyncio.to_thread(client.get_signing_keys, refresh)
            except jwt.PyJWKClientConnectionError as e:
                raise ServerUnavailable(
                    f"could not fetch the OIDC issuer's keys from {client.uri} ({e}): tokens "
                    f"cannot be checked until it answers; check {source} and that this server "
                    "reaches it"
                ) from None
            except jwt.PyJWTError as e:
                raise ServerUnavailable(
                    f"the OIDC issuer's key set at {client.uri} is not usable ({e}): check {source}"
                ) from None
            self._fetched_at = self._clock()
            return found

    async def _jwks_client(self) -> jwt.PyJWKClient:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    url = self.settings.jwks_url or await self._discover()
                    seconds = self.settings.jwks_cache_seconds
                    self._client = jwt.PyJWKClient(
                        url,
                        cache_jwk_set=seconds > 0,
                        lifespan=max(seconds, 1),
                        timeout=self._timeout,
                    )
        return self._client

    async def _discover(self) -> str:
        """The issuer's ``jwks_uri`` from its discovery document (OpenID Connect Discovery)."""
        doc = await self._discovery()
        url = self._discovery_url
        jwks = doc.get("jwks_uri")
        problem = _url_problem(jwks) if isinstance(jwks, str) else "it names none"
        if problem:
            raise ServerUnavailable(
                f"the jwks_uri of {url} is not usable: {problem}; set access.oidc.jwks_url"
            )
        return str(jwks)

    @property
    def _discovery_url(self) -> str:
        return self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"

    async def _discovery(self) -> dict[str, Any]:
        """The issuer's discovery document, read once (its issuer must be the one trusted)."""
        if self._document is not None:
            return self._document
        issuer, url = self.settings.issuer, self._discovery_url
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                response = await http.get(url, headers={"Accept": "application/json"})
                response.raise_for_status()
                doc: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as e:
            raise ServerUnavailable(
                f"could not read the OIDC issuer's discovery document {url} ({e}): tokens "
                "cannot be checked until it answers; check access.oidc.issuer, or set "
                "access.oidc.jwks_url"
            ) from None
        named = doc.get("issuer") if isinstance(doc, dict) else None
        if named != issuer:
            raise ServerUnavailable(
                f"the discovery document {url} names the issuer {named!r}, not {issuer!r}: "
                "set access.oidc.issuer exactly as the issuer's tokens write 'iss'"
            )
        self._document = doc
        return doc


def principal_from_claims(claims: Mapping[str, Any], settings: OidcSettings) -> Principal:
    """Who a verified token's claims say it is: name, groups (the role's first), role."""
    used = settings.user_claim
    name = _claim(claims, used)
    if not isinstance(name, str) or not name:
        used, name = "sub", claims.get("sub")
    if not isinstance(name, str) or not name:
        raise Unauthorized(
            f"the token has neither {settings.user_claim!r} nor 'sub': set "
            "access.oidc.user_claim to the claim that names users"
        )
    if not _NAME.fullmatch(name):
        raise Unauthorized(
            f"the token's {used!r} claim ({name[:64]!r}) is not a user name this server can "
            "use (letters, digits, '.', '_', '@', '+', '-'; up to 128; not starting with "
            "'.'): set access.oidc.user_claim to a claim whose values are such names (sub)"
        )
    if name in _RESERVED:
        raise Unauthorized(
            f"the user name {name!r} (the token's {used!r}) is reserved for this server's own "
            "token and operator: set access.oidc.user_claim to a claim that names users "
            "uniquely (sub)"
        )
    groups = _groups(_claim(claims, settings.groups_claim))
    role, by = _role(name, groups, settings)
    if by is not None:
        groups = [by, *(g for g in groups if g != by)]
    return Principal(name, role, tuple(groups), via="oidc")


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (realm_access.roles)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _groups(value: Any) -> list[str]:
    listed = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return list(dict.fromkeys(g for g in listed if isinstance(g, str) and g))


def _role(name: str, groups: list[str], settings: OidcSettings) -> tuple[Role, str | None]:
    """The highest role one of the groups gives, and that group; else the default role."""
    for role, setting in _ROLE_SETTINGS:
        named = set(getattr(settings, setting))
        hit = next((g for g in groups if g in named), None)
        if hit is not None:
            return role, hit
    if settings.default_role == "none":
        shown = ", ".join(groups[:10]) + (f" and {len(groups) - 10} more" if groups[10:] else "")
        lists = ", ".join(f"access.oidc.{setting}" for _, setting in _ROLE_SETTINGS)
        raise Unauthorized(
            f"OIDC user {name!r} has no role on this server (its groups: {shown or 'none'}): "
            f"none of them is in {lists}, and access.oidc.default_role is 'none'; "
            "an admin adds one of its groups to one of them"
        )
    return parse_role(settings.default_role), None


def _when(stamp: object) -> str:
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        try:
            return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")
        except (OverflowError, OSError, ValueError):
            pass
    return repr(stamp)


def _cached_keys(client: jwt.PyJWKClient) -> list[jwt.PyJWK] | None:
    """The signing keys of the cached key set while it is fresh (no I/O); None: fetch."""
    cache = client.jwk_set_cache
    found = cache.get() if cache is not None else None
    if found is None:
        return None
    return [k for k in found.keys if k.public_key_use in ("sig", None) and k.key_id]


def _checked(settings: OidcSettings) -> tuple[str, ...]:
    """The algorithms to accept; ConfigError for settings that would weaken the check."""
    if not settings.audience:
        raise ConfigError(
            "access.oidc.audience is empty: set it to the audience the issuer writes in "
            "toolship's tokens ('aud', often the client id); without it a token the issuer "
            "made for any other application would be accepted here"
        )
    if not settings.algorithms:
        raise ConfigError(
            "access.oidc.algorithms is empty: list the issuer's signing algorithms (RS256…)"
        )
    weak = [a for a in settings.algorithms if a.lower() == "none" or a.upper().startswith("HS")]
    if weak:
        raise ConfigError(
            f"access.oidc.algorithms lists {', '.join(weak)}: HMAC and 'none' are never "
            "accepted (a token with no signature, or one keyed with the issuer's public "
            "key, would be a forgery); remove them"
        )
    for alg in settings.algorithms:
        if alg not in ASYMMETRIC:
            raise ConfigError(
                f"access.oidc.algorithms: unknown algorithm {alg!r}; known: "
                f"{', '.join(sorted(ASYMMETRIC))}"
            )
    for setting, url in (("issuer", settings.issuer), ("jwks_url", settings.jwks_url)):
        problem = _url_problem(url) if url else None
        if problem:
            raise ConfigError(f"access.oidc.{setting} {url!r}: {problem}")
    return tuple(dict.fromkeys(settings.algorithms))


def _url_problem(url: str) -> str | None:
    """Why keys fetched from ``url`` could not be trusted (None: they can)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it must be an http(s) URL"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return (
            "plain HTTP to a host that is not this machine: anyone on the way could swap "
            "the issuer's keys; use https:// (plain http is for an issuer on loopback)"
        )
    return None
