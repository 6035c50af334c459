"""Logging in to the web UI in a real browser (acceptance 1, with its accessibility), the
one-time link of ``toolship ui``, and a forged form refused for want of the CSRF token
(acceptance 3)."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import VIEWPORT, check_page
from tests.conftest import toolship
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


def test_a_form_post_without_the_csrf_token_is_refused(page: Page, ui_server: Shared) -> None:
    page.goto("/ui/tasks")
    # A form like the page's own "Log out", but without its hidden csrf field (as a forged
    # one would be): the server answers 403 and the session stays.
    page.evaluate(
        """() => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = "/ui/logout";
            document.body.append(form);
            form.submit();
        }"""
    )
    expect(page.get_by_text("sent without its CSRF token")).to_be_visible()
    status = page.evaluate(
        """async () => (await fetch("/ui/logout", {method: "POST",
            headers: {"X-CSRF-Token": "forged"}, redirect: "manual"})).status"""
    )
    assert status == 403
    page.goto("/ui/tasks")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()  # still logged in


def test_the_one_time_link_of_toolship_ui_logs_in_once(browser: Browser, ui_server: Shared) -> None:
    done = toolship("--server", ui_server.url, "--token", TOKEN, "ui", "--no-browser", check=True)
    found = re.search(r"https?://\S+/ui/login/once\?code=\S+", done.stdout)
    assert found, done.stdout
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(found.group(0))
        page.wait_for_url("**/ui/tasks")
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        page.goto(found.group(0))  # a second use is refused
        expect(page.get_by_text("this login link was used already")).to_be_visible()
    finally:
        context.close()
