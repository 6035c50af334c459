"""What a page must never do (acceptance 3): run what a user or a tool wrote, or take a
changing request without the session's CSRF token."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.security.shared import Shared


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
