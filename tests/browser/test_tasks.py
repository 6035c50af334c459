"""Tasks in a real browser (acceptance 1 and 3): states and logs change on the page without
reloading it, a running task is cancelled from its page, an output downloads byte for
byte, and what a user or a tool wrote is shown as text.

The server offers one core (``local.cpus = 1``), so a task that holds it keeps the next
one QUEUED for as long as a test needs to see that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import CONFIG, accessible, check_page, log_in, screenshot
from tests.security.crashing import wait_for
from tests.security.shared import Shared, shared_server

TASKS = "/ga4gh/tes/v1/tasks"
BUSYBOX = "localhost/toolship-busybox"
LIVE = 30_000  # ms a live change may take to show (the engine, podman, the 1 s stream)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory, busybox: str) -> Iterator[Shared]:
    config = CONFIG + "[local]\ncpus = 1\n"
    with shared_server(tmp_path_factory.mktemp("ui-tasks"), config) as srv:
        yield srv


def create(api: httpx.Client, command: str, **fields: Any) -> str:
    doc = {"executors": [{"image": BUSYBOX, "command": ["sh", "-c", command]}], **fields}
    r = api.post(TASKS, json=doc)
    assert r.status_code == 200, r.text
    task_id: str = r.json()["id"]
    return task_id


def state(api: httpx.Client, task_id: str) -> str:
    found: str = api.get(f"{TASKS}/{task_id}").json()["state"]
    return found


def ended(api: httpx.Client, task_id: str) -> str:
    final = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}
    return wait_for(f"task {task_id} to end", lambda: (s := state(api, task_id)) in final and s)


def no_reloads(page: Page) -> list[str]:
    """The URLs the page navigates to from now on (a reload is one)."""
    seen: list[str] = []
    page.on("framenavigated", lambda f: seen.append(f.url) if f == page.main_frame else None)
    return seen


def test_a_queued_task_turns_complete_on_the_list_and_its_page_without_reloading(
    api: httpx.Client, context: Any
) -> None:
    blocker = create(api, "sleep 600", name="holds the only core")
    wait_for("the blocker to run", lambda: state(api, blocker) == "RUNNING")
    waiting = create(api, "echo done", name="waits its turn")
    listing, task_page = context.new_page(), context.new_page()
    try:
        listing.goto("/ui/tasks")
        task_page.goto(f"/ui/tasks/{waiting}")
        expect(listing.locator(f"#state-{waiting}")).to_have_text("QUEUED")
        expect(task_page.locator("#task-state")).to_have_text("QUEUED")
        expect(listing.locator("#counts li[data-state]").first).to_be_visible()
        check_page(listing, "tasks")
        reloads = no_reloads(listing) + no_reloads(task_page)
        assert api.post(f"{TASKS}/{blocker}:cancel").status_code == 200

        expect(listing.locator(f"#state-{blocker}")).to_have_text("CANCELED", timeout=LIVE)
        expect(listing.locator(f"#state-{waiting}")).to_have_text("COMPLETE", timeout=LIVE)
        expect(task_page.locator("#task-state")).to_have_text("COMPLETE", timeout=LIVE)
        expect(task_page.locator("#log-stdout")).to_have_text("done\n", timeout=LIVE)
        assert reloads == []
    finally:
        listing.close()
        task_page.close()


def test_the_log_tail_grows_while_the_task_writes_and_cancel_stops_it(
    api: httpx.Client, page: Page
) -> None:
    task_id = create(
        api, 'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.2; done', name="writer"
    )
    try:
        wait_for("the writer to run", lambda: state(api, task_id) == "RUNNING")
        page.goto(f"/ui/tasks/{task_id}")
        reloads = no_reloads(page)
        log = page.locator("#log-stdout")
        expect(log).to_contain_text("line 2", timeout=LIVE)
        shown = log.inner_text()
        expect(log).to_contain_text(f"line {shown.count(chr(10)) + 5}\n", timeout=LIVE)
        check_page(page, "task-running", show="#log-stdout")

        page.get_by_role("button", name="Cancel task").click()
        expect(page.locator("#task-state")).to_have_text("CANCELED", timeout=LIVE)
        assert ended(api, task_id) == "CANCELED"
        assert reloads == []
    finally:  # a failure must not leave the endless writer running after the server stops
        api.post(f"{TASKS}/{task_id}:cancel")


def test_an_output_downloads_byte_for_byte(api: httpx.Client, page: Page, tmp_path: Path) -> None:
    target = tmp_path / "delivered" / "data.bin"
    task_id = create(
        api, "head -c 100000 /dev/urandom > /out/data.bin", name="random bytes",
        outputs=[{"path": "/out/data.bin", "url": target.as_uri(), "type": "FILE"}],
    )  # fmt: skip
    assert ended(api, task_id) == "COMPLETE"
    data = target.read_bytes()
    assert len(data) == 100_000

    page.goto(f"/ui/tasks/{task_id}")
    expect(page.get_by_text(hashlib.sha256(data).hexdigest())).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download /out/data.bin").click()
    saved = tmp_path / "downloaded.bin"
    download.value.save_as(saved)
    assert saved.read_bytes() == data
    check_page(page, "task")


def test_a_script_name_and_an_html_log_render_as_text(api: httpx.Client, page: Page) -> None:
    name = "<script>alert(1)</script>"
    task_id = create(
        api, "echo '<b>bold</b>'; sleep 3; echo '<img src=x onerror=alert(2)>'",
        name=name, tags={"note": "<i>tag</i>"},
    )  # fmt: skip
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    wait_for("the task to run", lambda: state(api, task_id) != "QUEUED")
    page.goto(f"/ui/tasks/{task_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    log = page.locator("#log-stdout")
    expect(log).to_contain_text("<img src=x onerror=alert(2)>", timeout=LIVE)  # followed live
    expect(log).to_contain_text("<b>bold</b>")
    assert log.locator("b, img").count() == 0
    expect(page.get_by_text("note=<i>tag</i>")).to_be_visible()

    page.goto(f"/ui/tasks?name={name[:8]}")
    expect(page.locator(f"#task-{task_id}")).to_contain_text(name)
    assert page.locator("#task-rows script").count() == 0
    assert dialogs == []


def test_a_batch_shows_its_progress_report_and_members(api: httpx.Client, page: Page) -> None:
    template = {
        "name": "part-{i}",
        "executors": [{"image": BUSYBOX, "command": ["sh", "-c", "echo part {i}"]}],
    }
    r = api.post("/api/v1/batches", json={"name": "three parts", "template": template,
                                           "params": [{"i": i} for i in range(3)]})  # fmt: skip
    assert r.status_code == 200, r.text
    batch_id, ids = r.json()["id"], r.json()["task_ids"]
    for task_id in ids:
        assert ended(api, task_id) == "COMPLETE"

    page.goto("/ui/batches")
    check_page(page, "batches")
    page.get_by_role("link", name="three parts").click()
    page.wait_for_url(f"**/ui/batches/{batch_id}")
    members = page.locator("#members #task-rows tr[id^='task-']")
    expect(members).to_have_count(3)
    expect(page.locator("svg[role='img']").first).to_be_visible()
    check_page(page, "batch")


def test_on_a_phone_in_dark_mode_every_page_reads_and_the_keyboard_gets_around(
    browser: Browser, ui_server: Shared, api: httpx.Client
) -> None:
    """390x844, dark: axe-core (contrast included) passes on each page, nothing but a
    table scrolls sideways, and from the top the keyboard reaches the skip link first."""
    task_id = create(api, "echo from a phone", name="a task with a rather long name to wrap")
    assert ended(api, task_id) == "COMPLETE"
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, color_scheme="dark", base_url=ui_server.url
    )
    try:
        page = log_in(context, ui_server.url)
        for path in ("/ui/tasks", f"/ui/tasks/{task_id}", "/ui/services", "/ui/new",
                     "/ui/batches"):  # fmt: skip
            page.goto(path)
            accessible(page)
            wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert wider <= 1, f"{path} scrolls sideways by {wider}px on a phone"
        page.goto(f"/ui/tasks/{task_id}")
        screenshot(page, "phone-dark-task")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.keyboard.press("Enter")
        assert page.url.endswith("#main")
    finally:
        context.close()
