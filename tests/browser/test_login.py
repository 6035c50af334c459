"""Logging in to the web UI in a real browser (acceptance 1), with its accessibility."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.browser.conftest import VIEWPORT, check_page
from tests.security.shared import TOKEN, Shared


def test_log_in_with_a_token_and_out_again(browser: Browser, ui_server: Shared) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{ui_server.url}/ui/tasks?state=COMPLETE")
        page.wait_for_url("**/ui/login?next=*")  # no session: the login page, remembering
        check_page(page, "login")

        page.get_by_label("Token").fill("not-a-token")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_be_visible()
        expect(page.get_by_label("Token")).to_have_attribute("aria-invalid", "true")

        page.get_by_label("Token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/ui/tasks?state=COMPLETE")  # back to the page asked for
        cookie = next(c for c in context.cookies() if c["name"] == "toolship_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()

        page.get_by_role("button", name="Log out").click()
        page.wait_for_url("**/ui/login*")
        page.goto(f"{ui_server.url}/ui/tasks")
        page.wait_for_url("**/ui/login?next=*")
    finally:
        context.close()
