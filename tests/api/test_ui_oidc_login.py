"""The web UI's OIDC login: authorisation code + PKCE against the loopback issuer (tests/oidc.py).

The browser's part is played by hand: the UI's redirect is followed to the issuer
(real HTTP on loopback), the issuer's redirect back is handed to the server in
process.  A good round trip logs alice in; an answer of another login (state), a
refused login, a code used twice and a tampered verifier all land on the login
page saying why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.api.conftest import Server
from tests.oidc import Provider, serve

CLIENT = "toolship-ui"


@pytest.fixture
def provider() -> Iterator[Provider]:
    with serve() as p:
        p.login_claims = {"preferred_username": "alice", "groups": ["scientists"]}
        yield p


@pytest.fixture
def ui(server: Server, provider: Provider) -> Iterator[httpx.Client]:
    server.config = {
        "access": {
            "oidc": {
                "issuer": provider.url,
                "audience": "toolship",
                "client_id": CLIENT,
                "user_groups": ["scientists"],
            }
        }
    }
    with server.run() as api:
        api.headers.pop("Authorization", None)  # a browser: cookies only
        yield api


def to_issuer(ui: httpx.Client, next_page: str = "/ui/services") -> httpx.Response:
    """Start the login; follow the UI's redirect to the issuer, which redirects back."""
    start = ui.get("/ui/login/oidc", params={"next": next_page})
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == [CLIENT]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256
    answer = httpx.get(authorize, follow_redirects=False)
    assert answer.status_code == 302
    return answer


def back(ui: httpx.Client, answer: httpx.Response) -> httpx.Response:
    """The browser arriving at the callback with the issuer's query."""
    parts = urlsplit(answer.headers["location"])
    assert parts.path == "/ui/login/oidc/callback"
    return ui.get(f"{parts.path}?{parts.query}")


def test_the_login_page_offers_the_issuer_and_pkce_logs_alice_in(
    ui: httpx.Client, provider: Provider
) -> None:
    assert f"Log in with {provider.url}" in ui.get("/ui/login").text
    done = back(ui, to_issuer(ui))
    assert done.status_code == 200, done.text
    assert 'http-equiv="refresh" content="0;url=/ui/services"' in done.text
    cookie = done.headers["set-cookie"]
    assert "toolship_session=" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    (form,) = provider.token_requests
    assert len(form["code_verifier"]) >= 43 and form["grant_type"] == "authorization_code"
    page = ui.get("/ui/services")
    assert page.status_code == 200 and 'title="role: user">alice<' in page.text


def test_an_answer_of_another_login_is_refused(ui: httpx.Client) -> None:
    answer = to_issuer(ui)
    location = re.sub(r"state=[^&]+", "state=forged", answer.headers["location"])
    refused = ui.get(urlsplit(location).path + "?" + urlsplit(location).query)
    assert refused.status_code == 401
    assert "does not belong to this login (its state differs)" in refused.text
    assert "toolship_session=" not in refused.headers.get("set-cookie", "")


def test_a_refused_login_and_a_used_code_say_why(ui: httpx.Client, provider: Provider) -> None:
    answer = to_issuer(ui)
    assert back(ui, answer).status_code == 200
    again = back(ui, answer)  # the same code once more (the flow cookie is gone too)
    assert again.status_code == 401 and "log in again" in again.text
    provider.refuse = "access_denied"
    refused = back(ui, to_issuer(ui))
    assert refused.status_code == 401
    assert f"{provider.url} refused the login (access_denied)" in refused.text


def test_a_tampered_verifier_fails_pkce_at_the_issuer(ui: httpx.Client, provider: Provider) -> None:
    answer = to_issuer(ui)
    original = provider.token

    def tampered(form: dict[str, str]) -> tuple[int, dict[str, object]]:
        return original({**form, "code_verifier": form["code_verifier"][::-1]})

    provider.token = tampered  # type: ignore[method-assign]
    refused = back(ui, answer)
    assert refused.status_code == 401
    assert "refused the login code (400: PKCE verification failed)" in refused.text
