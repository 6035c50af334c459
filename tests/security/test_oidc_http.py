"""OIDC through real HTTP: a ``toolship serve`` configured by environment, an issuer on loopback.

The in-process tests (tests/api/test_oidc.py) refuse each bad token; this one shows
the same verifier in a real server process, reached by httpx and by the CLI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import toolship
from tests.oidc import AUDIENCE, Key, Provider, serve
from toolship.embedded import EmbeddedServer, ensure_server, stop_server


@pytest.fixture
def provider() -> Iterator[Provider]:
    with serve() as p:
        yield p


@pytest.fixture
def oidc_server(
    home: Path, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmbeddedServer]:
    for name, value in {
        "ISSUER": provider.url,
        "AUDIENCE": AUDIENCE,
        "USER_GROUPS": '["scientists"]',
        "DEFAULT_ROLE": "none",
    }.items():
        monkeypatch.setenv(f"TOOLSHIP_ACCESS__OIDC__{name}", value)
    found = ensure_server(home)
    yield found
    stop_server(home)


def test_a_real_server_takes_the_issuers_tokens_and_says_why_it_refuses_others(
    oidc_server: EmbeddedServer, provider: Provider
) -> None:
    def me(token: str) -> httpx.Response:
        return httpx.get(
            f"{oidc_server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
        )

    good = provider.sign(preferred_username="alice", groups=["newsletter", "scientists"])
    r = me(good)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "name": "alice",
        "role": "user",
        "groups": ["scientists", "newsletter"],
        "via": "oidc",
    }
    tasks = httpx.get(
        f"{oidc_server.url}/ga4gh/tes/v1/tasks", headers={"Authorization": f"Bearer {good}"}
    )
    assert tasks.status_code == 200, tasks.text

    cli = toolship("--server", oidc_server.url, "--token", good, "whoami", check=True)
    assert cli.stdout.strip() == "alice (user groups scientists,newsletter; via oidc)"

    refused = {
        "expired": (provider.sign(exp=1, iat=0), "the token expired at 1970-01-01T00:00:01"),
        "no role": (provider.sign(groups=["newsletter"]), "'alice' has no role on this server"),
        "unknown key": (provider.sign(Key.rsa("stranger")), "key 'stranger' is not among"),
        "alg none": (provider.unsigned(), "alg 'none'"),
        "hs256": (provider.hs256_with_public_key(), "HMAC (HS256)"),
        "audience": (provider.sign(aud="other"), "audience ['other'] is not this server's"),
    }
    for case, (token, says) in refused.items():
        r = me(token)
        assert r.status_code == 401, (case, r.text)
        assert says in r.json()["detail"], case
    # The server's own token still works beside OIDC.
    assert me(oidc_server.token).json()["via"] == "server-token"
    # Discovery once, the key set once: the unknown kid came within the refresh cooldown.
    assert (provider.discovery_fetches, provider.jwks_fetches) == (1, 1)
    # Who did what: alice's login through the issuer, once, from this address.
    log = httpx.get(
        f"{oidc_server.url}/api/v1/events",
        params={"action": "login", "actor": "alice"},
        headers={"Authorization": f"Bearer {oidc_server.token}"},
    )
    assert log.status_code == 200, log.text
    logins = [(e["actor"], e["address"]) for e in log.json()["events"]]
    assert logins == [("alice", "127.0.0.1")], logins
