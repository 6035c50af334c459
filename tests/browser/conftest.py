"""The web UI in a real browser: Debian's chromium driven by Playwright, against a real
``toolship serve`` (local backend, podman, the busybox image) started once per module.

Needs chromium and axe-core (scripts/browser-setup.sh installs both); both are
required, never skipped.  Every page a test visits can be checked with :func:`accessible`
(axe-core, no serious or critical violation) and saved with :func:`screenshot` to
docs/screenshots/ui-NAME.png (1280x800), which the README shows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.conftest import ROOT, require
from tests.security.shared import TOKEN, Shared, shared_server
from toolship import __version__

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AXE = ROOT / ".browser" / "node_modules" / "axe-core" / "axe.min.js"
# Each run saves its screenshots here; TOOLSHIP_SCREENSHOTS=docs/screenshots refreshes the
# README's (they change with every run: ids, times), which are committed only on purpose.
SHOTS = ROOT / os.environ.get("TOOLSHIP_SCREENSHOTS", ".browser/screenshots")
VIEWPORT = {"width": 1280, "height": 800}
# The server under test makes no SBOM of each image a task runs (12-20 s of CPU a scan).
CONFIG = "[images]\nsboms_on_use = false\n"


# Per module, not per session: Playwright's sync API keeps an event loop running in the
# main thread while it is open, and every later test's asyncio.run() would fail under it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require(
        os.access(CHROMIUM, os.X_OK), "Debian's chromium", "run scripts/browser-setup.sh (as root)"
    )
    require(AXE.is_file(), f"axe-core ({AXE})", "run scripts/browser-setup.sh")
    with sync_playwright() as pw:
        found = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield found
        found.close()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory, busybox: str) -> Iterator[Shared]:
    """A real server with a token (tests.security.shared.TOKEN), one per test module."""
    with shared_server(tmp_path_factory.mktemp("ui"), CONFIG) as srv:
        yield srv


def log_in(context: BrowserContext, url: str, token: str = TOKEN) -> Page:
    """Log in through the login page as a user would; the page lands on the tasks list."""
    page = context.new_page()
    page.goto(f"{url}/ui/login")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/ui/tasks*")
    return page


@pytest.fixture(scope="module")
def context(browser: Browser, ui_server: Shared) -> Iterator[BrowserContext]:
    """A browser profile logged in to ``ui_server`` (one login per module)."""
    ctx = browser.new_context(viewport=VIEWPORT, base_url=ui_server.url)
    ctx.set_default_timeout(15_000)
    log_in(ctx, ui_server.url).close()
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    yield page
    page.close()


@pytest.fixture
def api(ui_server: Shared) -> Iterator[httpx.Client]:
    with ui_server.client() as client:
        yield client


def accessible(page: Page) -> None:
    """axe-core finds no serious or critical violation on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document);
            return result.violations
                .filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => ({id: v.id, impact: v.impact, help: v.help,
                            nodes: v.nodes.slice(0, 5).map(n => n.html)}));
        }"""
    )
    assert not found, f"{page.url}: axe-core violations:\n" + "\n".join(
        f"  {v['impact']} {v['id']}: {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in found
    )


def screenshot(page: Page, name: str, show: str | None = None) -> Path:
    """Save the viewport (1280x800) as SHOTS/ui-NAME.png, scrolled to the
    element ``show`` (a CSS selector) if given."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    if show is not None:
        page.locator(show).first.scroll_into_view_if_needed()
    path = SHOTS / f"ui-{name}.png"
    page.screenshot(path=str(path), animations="disabled", caret="hide")
    return path


def check_page(page: Page, name: str, show: str | None = None) -> None:
    """The page passes axe-core and shows the server's version in its footer (no page's
    own ``version`` hides it), then its screenshot is saved (see :func:`screenshot`)."""
    accessible(page)
    expect(page.locator("footer")).to_contain_text(f"toolship {__version__} ·")
    screenshot(page, name, show)
