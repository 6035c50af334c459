"""OIDC bearer JWTs against an issuer on loopback (tests/oidc.py): accepted, mapped, refused."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Request

from tests.api.conftest import TASKS, Server, create
from tests.oidc import AUDIENCE, Key, Provider, serve
from toolship.api.oidc import OidcVerifier
from toolship.config import OidcSettings
from toolship.errors import ConfigError, ServerUnavailable, Unauthorized
from toolship.identity import Principal, Role

REQUEST = Request({"type": "http", "method": "GET", "path": "/", "headers": []})


@pytest.fixture
def provider() -> Iterator[Provider]:
    with serve() as p:
        yield p


def oidc(provider: Provider, **given: Any) -> OidcSettings:
    return OidcSettings(issuer=provider.url, audience=AUDIENCE, **given)


def verify(verifier: OidcVerifier, token: str) -> Principal | None:
    return asyncio.run(verifier.verify(token, REQUEST))


def test_a_valid_token_is_accepted_and_mapped_to_its_user_groups_and_role(
    provider: Provider,
) -> None:
    verifier = OidcVerifier(oidc(provider, user_groups=["scientists"], admin_groups=["ops"]))
    assert verifier.active
    alice = verify(verifier, provider.sign())
    assert alice == Principal("alice", Role.USER, ("scientists",), via="oidc")
    ec_key = provider.keys[1]
    bob = verify(verifier, provider.sign(ec_key, preferred_username="bob", groups=["x", "ops"]))
    assert bob == Principal("bob", Role.ADMIN, ("ops", "x"), via="oidc")
    # The discovery document and the key set were fetched once for both tokens.
    assert (provider.discovery_fetches, provider.jwks_fetches) == (1, 1)


def test_a_token_that_is_no_jwt_is_left_to_the_next_verifier(provider: Provider) -> None:
    verifier = OidcVerifier(oidc(provider))
    assert verify(verifier, "a-users-token_9Xy") is None
    assert verify(verifier, "a.b.c") is None
    assert provider.jwks_fetches == 0


def test_an_unconfigured_verifier_is_not_active() -> None:
    assert not OidcVerifier(OidcSettings()).active


def _tampered(p: Provider) -> str:
    """A good token whose claims were swapped for others (the signature kept)."""
    head, _, rest = p.sign().partition(".")
    _, _, signature = rest.partition(".")
    forged = json.dumps(p.claims(preferred_username="mallory")).encode()
    body = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    return f"{head}.{body}.{signature}"


BAD: dict[str, tuple[Any, str]] = {
    "expired": (
        lambda p: p.sign(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
        "the token expired at",
    ),
    "wrong audience": (
        lambda p: p.sign(aud="another-app"),
        "audience ['another-app'] is not this server's (access.oidc.audience = 'toolship')",
    ),
    "wrong issuer": (
        lambda p: p.sign(iss="https://evil.example.org"),
        "issuer 'https://evil.example.org' is not the one this server trusts",
    ),
    "unknown key": (
        lambda p: p.sign(Key.rsa("stranger")),
        "signing key 'stranger' is not among the issuer's keys",
    ),
    "alg none": (lambda p: p.unsigned(), "is not signed (alg 'none')"),
    "hs256 with the public key": (
        lambda p: p.hs256_with_public_key(),
        "signed with HMAC (HS256), which this server never accepts",
    ),
    "tampered": (
        _tampered,
        "signature does not match the issuer's key 'rsa-1'",
    ),
    "no exp": (lambda p: p.sign(exp=None), "has no 'exp' claim"),
    "not yet valid": (lambda p: p.sign(nbf=int(time.time()) + 3600), "not valid before"),
}


@pytest.fixture
def app(server: Server, provider: Provider) -> Iterator[httpx.Client]:
    server.tokens = []
    server.config = {"access": {"oidc": {"issuer": provider.url, "audience": AUDIENCE}}}
    with server.run() as client:
        yield client


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_token_is_a_401_that_names_the_cause(
    app: httpx.Client, provider: Provider, case: str
) -> None:
    make, says = BAD[case]
    r = app.get(TASKS, headers={"Authorization": f"Bearer {make(provider)}"})
    assert r.status_code == 401, r.text
    assert says in r.json()["detail"]


def test_through_the_app_a_good_token_lists_and_creates(
    app: httpx.Client, provider: Provider
) -> None:
    good = {"Authorization": f"Bearer {provider.sign()}"}
    assert app.get(TASKS, headers=good).status_code == 200
    me = app.get("/api/v1/me", headers=good).json()
    assert me == {"name": "alice", "role": "user", "groups": ["scientists"], "via": "oidc"}
    app.headers.update(good)
    create(app)
    # Without a token the server (which now has a way to authenticate) asks for one.
    assert app.get(TASKS, headers={"Authorization": ""}).status_code == 401


def test_the_server_token_still_works_beside_oidc(server: Server, provider: Provider) -> None:
    server.config = {"access": {"oidc": {"issuer": provider.url, "audience": AUDIENCE}}}
    with server.run() as api:
        assert api.get(TASKS).status_code == 200
        wrong = api.get(TASKS, headers={"Authorization": "Bearer nope"})
        assert wrong.json() == {"detail": "the bearer token is not valid for this server"}
    assert provider.jwks_fetches == 0


def test_an_unknown_key_refreshes_the_keys_once_and_a_rotated_key_is_then_accepted(
    provider: Provider,
) -> None:
    verifier = OidcVerifier(oidc(provider), cooldown_seconds=0)
    assert verify(verifier, provider.sign()) is not None
    assert provider.jwks_fetches == 1
    with pytest.raises(Unauthorized, match="even after fetching them again"):
        verify(verifier, provider.sign(Key.rsa("stranger")))
    assert provider.jwks_fetches == 2  # one refresh, not more
    rotated = Key.ec("rotated")
    provider.keys.append(rotated)
    assert verify(verifier, provider.sign(rotated)) is not None
    assert provider.jwks_fetches == 3
    assert verify(verifier, provider.sign(rotated)) is not None
    assert provider.jwks_fetches == 3  # cached


def test_unknown_keys_refresh_at_most_once_per_cooldown(provider: Provider) -> None:
    now = [1000.0]
    verifier = OidcVerifier(oidc(provider), cooldown_seconds=30, clock=lambda: now[0])
    verify(verifier, provider.sign())
    for _ in range(5):
        with pytest.raises(Unauthorized):
            verify(verifier, provider.sign(Key.rsa("random-kid")))
    assert provider.jwks_fetches == 1  # a flood of made-up kids does not reach the issuer
    now[0] += 31
    with pytest.raises(Unauthorized):
        verify(verifier, provider.sign(Key.rsa("random-kid")))
    assert provider.jwks_fetches == 2


def test_a_cache_of_zero_seconds_fetches_the_keys_for_every_token(provider: Provider) -> None:
    verifier = OidcVerifier(oidc(provider, jwks_cache_seconds=0))
    for _ in range(3):
        verify(verifier, provider.sign())
    assert provider.jwks_fetches == 3


def test_a_configured_jwks_url_skips_discovery(provider: Provider) -> None:
    verifier = OidcVerifier(oidc(provider, jwks_url=provider.jwks_url))
    assert verify(verifier, provider.sign()) is not None
    assert provider.discovery_fetches == 0


def test_a_discovery_document_of_another_issuer_is_refused(provider: Provider) -> None:
    verifier = OidcVerifier(oidc(provider))
    real = provider.url
    provider.url = "https://elsewhere.example.org"
    token = provider.sign(iss=real)
    with pytest.raises(ServerUnavailable, match="names the issuer 'https://elsewhere"):
        verify(verifier, token)
    provider.url = real
    assert verify(verifier, token) is not None  # a failed discovery is tried again


def test_an_issuer_that_does_not_answer_is_a_503_naming_it(provider: Provider) -> None:
    gone = "http://127.0.0.1:9"
    verifier = OidcVerifier(OidcSettings(issuer=gone, audience=AUDIENCE))
    discovery = re.escape(f"{gone}/.well-known/openid-configuration")
    with pytest.raises(ServerUnavailable, match=discovery):
        verify(verifier, provider.sign(iss=gone))
    keys = OidcVerifier(OidcSettings(issuer=gone, audience=AUDIENCE, jwks_url=f"{gone}/jwks"))
    with pytest.raises(ServerUnavailable, match=r"access\.oidc\.jwks_url"):
        verify(keys, provider.sign(iss=gone))


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"audience": ""}, "access.oidc.audience is empty"),
        ({"algorithms": ["RS256", "HS256"]}, "HMAC and 'none' are never accepted"),
        ({"algorithms": ["none"]}, "HMAC and 'none' are never accepted"),
        ({"algorithms": ["RS257"]}, "unknown algorithm 'RS257'"),
        ({"algorithms": []}, "access.oidc.algorithms is empty"),
        ({"issuer": "http://login.example.org"}, "plain HTTP"),
        ({"jwks_url": "http://login.example.org/jwks"}, "plain HTTP"),
        ({"jwks_url": "file:///etc/passwd"}, "http(s)"),
    ],
)
def test_settings_that_would_weaken_the_check_stop_the_server_at_start(
    given: dict[str, Any], says: str
) -> None:
    settings: dict[str, Any] = {"issuer": "https://login.example.org", "audience": "toolship"}
    with pytest.raises(ConfigError, match=re.escape(says)):
        OidcVerifier(OidcSettings(**{**settings, **given}))
