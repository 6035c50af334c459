"""10 000 tasks in the browser (acceptance 1): filter by tag, page through, counts by state.

The tasks are stored, not run: ``Store.insert_tasks`` writes them into the new home's
database in one transaction (about a second) before the server starts on that home.
Every third task is tagged ``project=alpha``, the others ``project=beta``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import CONFIG, check_page
from tests.security.shared import Shared, shared_server
from toolship.db import Store, TaskRow
from toolship.engine.ids import new_task_id
from toolship.states import TaskState
from toolship.timeutil import now_rfc3339

COUNT = 10_000
ALPHA: list[str] = []  # the alpha tasks' ids, oldest first


def store(home: Path) -> None:
    """Store the tasks in ``home``'s database, finished, each with its tag."""
    home.mkdir(parents=True)
    db = Store.open(f"sqlite:///{home / 'toolship.db'}")
    rows = []
    for i in range(COUNT):
        project = "alpha" if i % 3 == 0 else "beta"
        spec = {
            "name": f"{project}-{i:05d}",
            "executors": [{"image": "localhost/toolship-busybox", "command": ["true"]}],
            "tags": {"project": project},
        }
        row = TaskRow(
            seq=0, id=new_task_id(), state=TaskState.COMPLETE, name=spec["name"],
            creation_time=now_rfc3339(), priority=0, cpus=1, memory_gb=0.0, gpus=0, spec=spec,
        )  # fmt: skip
        rows.append(row)
        if project == "alpha":
            ALPHA.append(row.id)
    db.insert_tasks(rows)
    db.close()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory, busybox: str) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("ui-many")
    store(root / "shared-home")  # the home shared_server starts in
    with shared_server(root, CONFIG) as srv:
        yield srv


def shown(page: Page) -> list[str]:
    ids = page.locator("#task-rows tr[id^='task-']").evaluate_all("rows => rows.map(r => r.id)")
    return [i.removeprefix("task-") for i in ids]


def test_filter_ten_thousand_tasks_by_tag_and_page_through(page: Page) -> None:
    page.goto("/ui/tasks")
    complete = page.locator("#counts li[data-state='COMPLETE'] .num")
    expect(complete).to_have_text(str(COUNT))
    page.get_by_label("Tag").fill("project=alpha")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/ui/tasks?*tag=project%3Dalpha*")
    expect(complete).to_have_text(str(len(ALPHA)))
    check_page(page, "tasks-filtered")

    newest_first = list(reversed(ALPHA))
    seen: list[str] = []
    for n in range(3):
        ids = shown(page)
        assert ids, f"page {n + 1} is empty"
        assert ids == newest_first[len(seen) : len(seen) + len(ids)]
        seen += ids
        url = page.url
        page.get_by_role("link", name="Next page").click()
        page.wait_for_url(lambda u, url=url: u != url)  # type: ignore[misc]
        expect(page.get_by_label("Tag")).to_have_value("project=alpha")  # the filter stays
    page.get_by_role("link", name="First page").click()
    expect(page.locator("#task-rows tr").first).to_have_id(f"task-{newest_first[0]}")
