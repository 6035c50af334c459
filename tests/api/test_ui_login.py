"""Logging in to the web UI with a token: the cookie, CSRF, redirects, disabled users, links."""

from __future__ import annotations

import re

import httpx

from tests.api.conftest import TOKEN, Server


def login_form(ui: httpx.Client, next_page: str = "") -> str:
    """Open the login page; its CSRF field (the matching cookie is now in ``ui``)."""
    page = ui.get("/ui/login", params={"next": next_page} if next_page else None)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def log_in(ui: httpx.Client, token: str, next_page: str = "") -> httpx.Response:
    csrf = login_form(ui, next_page)
    return ui.post("/ui/login", data={"token": token, "csrf": csrf, "next": next_page})


def test_a_token_logs_in_with_a_strict_http_only_cookie(server: Server) -> None:
    with server.run() as ui:
        ui.headers.pop("Authorization")
        first = ui.get("/ui/tasks", params={"state": "RUNNING"})
        assert first.status_code == 303
        assert first.headers["location"] == "/ui/login?next=%2Fui%2Ftasks%3Fstate%3DRUNNING"
        wrong = log_in(ui, "not-the-token")
        assert wrong.status_code == 401
        assert "the bearer token is not valid for this server" in wrong.text
        done = log_in(ui, TOKEN, "/ui/services")
        assert (done.status_code, done.headers["location"]) == (303, "/ui/services")
        cookie = done.headers["set-cookie"]
        for attribute in ("toolship_session=", "HttpOnly", "Path=/ui"):
            assert attribute in cookie, cookie
        assert "samesite=strict" in cookie.lower() and "secure" not in cookie.lower()  # http
        assert ui.get("/ui/services").status_code == 200


def test_forms_without_their_csrf_token_are_refused(server: Server) -> None:
    with server.run() as ui:
        ui.headers.pop("Authorization")
        login_form(ui)
        refused = ui.post("/ui/login", data={"token": TOKEN, "csrf": "guessed"})
        assert refused.status_code == 403 and "CSRF" in refused.text
        assert log_in(ui, TOKEN).status_code == 303
        out = ui.post("/ui/logout")  # logged in, but no token with the form
        assert out.status_code == 403 and "CSRF token" in out.text
        assert ui.get("/ui/tasks").status_code == 200  # still logged in


def test_next_never_leaves_the_ui_and_a_forged_cookie_is_no_session(server: Server) -> None:
    with server.run() as ui:
        ui.headers.pop("Authorization")
        for target in ("https://evil.example/ui", "//evil.example/ui", "/api/v1/tasks"):
            done = log_in(ui, TOKEN, target)
            assert done.headers["location"] == "/ui/tasks", target
        ui.cookies.set("toolship_session", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290In0.", path="/ui")
        assert ui.get("/ui/tasks").status_code == 303


def test_a_disabled_users_session_ends_at_once(server: Server) -> None:
    with server.run() as api:
        made = api.post("/api/v1/users", json={"name": "dora", "role": "user"})
        assert made.status_code == 200, made.text
        token = made.json()["token"]["token"]
        admin = api.headers.pop("Authorization")
        assert log_in(api, token).status_code == 303
        assert 'title="role: user">dora<' in api.get("/ui/tasks").text
        off = api.post("/api/v1/users/dora:disable", headers={"Authorization": admin})
        assert off.status_code == 200, off.text
        assert api.get("/ui/tasks").status_code == 303  # back to the login page
        htmx = api.get("/ui/tasks", headers={"HX-Request": "true"})
        assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/ui/login")


def test_a_one_time_link_logs_in_once(server: Server) -> None:
    with server.run() as api:
        made = api.post("/api/v1/ui/links")
        assert made.status_code == 200, made.text
        path = made.json()["path"]
        api.headers.pop("Authorization")
        assert api.get("/ui/tasks").status_code == 303
        used = api.get(path)
        assert used.status_code == 303 and "toolship_session=" in used.headers["set-cookie"]
        assert api.get("/ui/tasks").status_code == 200
        api.cookies.clear()
        again = api.get(path)
        assert again.status_code == 401 and "used already" in again.text
        # The link route itself needs the API's token.
        assert api.post("/api/v1/ui/links").status_code == 401
