"""Running things from forms in a real browser (acceptance 1): a service's form made from
its typed ports (a bad value is shown beside its field, a good one runs and is watched
from QUEUED to COMPLETE without reloading), and the new-task form.

The service is a tiny image built here FROM the busybox image (its labels declare a
required int parameter and an output file) and registered through the API.  The server
offers one core (``local.cpus = 1``): a task holding it keeps the run QUEUED until the
test lets it go.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import CONFIG, check_page
from tests.browser.test_tasks import LIVE, create, ended, no_reloads, state
from tests.conftest import read_when_written, unique_name
from tests.security.crashing import wait_for
from tests.security.shared import Shared, shared_server

SERVICE = "ui-counter"
CONTAINERFILE = f"""\
FROM localhost/toolship-busybox
LABEL toolship.service.name="{SERVICE}" \\
      toolship.service.version="1" \\
      toolship.service.description="Counts to count, a line a tenth of a second" \\
      toolship.service.param.count.type="int" \\
      toolship.service.param.count.min="1" \\
      toolship.service.param.count.max="100" \\
      toolship.service.param.count.required="true" \\
      toolship.service.output.report.path="/data/out/report.txt"
LABEL toolship.service.command='["sh", "-c", "i=0; while [ $i -lt {{count}} ]; do \\
i=$((i+1)); echo step $i; sleep 0.1; done; echo counted {{count}} > {{report}}"]'
CMD ["false"]
"""


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory, busybox: str) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("ui-forms")
    tag = f"localhost/{unique_name(SERVICE)}:1"
    (root / "Containerfile").write_text(CONTAINERFILE)
    subprocess.run(
        ["podman", "build", "--quiet", "--network", "none", "--pull=never", "-t", tag, str(root)],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    try:
        with shared_server(root, CONFIG + "[local]\ncpus = 1\n") as srv:
            with srv.client() as api:
                r = api.post("/api/v1/services", json={"image": tag})
                assert r.status_code == 201, r.text
            yield srv
    finally:
        subprocess.run(["podman", "rmi", "--force", tag], capture_output=True, check=False)


def test_a_service_run_from_its_form(api: httpx.Client, page: Page, tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    page.goto("/ui/services")
    page.get_by_label("Search services").fill("counter")
    page.get_by_label("Search services").press("Enter")
    check_page(page, "services")
    page.get_by_role("link", name=SERVICE).first.click()
    page.wait_for_url(f"**/ui/services/{SERVICE}*")

    blocker = create(api, "sleep 600", name="holds the only core")
    wait_for("the blocker to run", lambda: state(api, blocker) == "RUNNING")
    before = api.get("/ga4gh/tes/v1/tasks").json()["tasks"]
    page.get_by_label("count").fill("0")
    page.get_by_label("report").fill(report.as_uri())
    page.get_by_role("button", name="Run").click()
    error = page.locator("#error-count")
    expect(error).to_contain_text("parameter 'count': '0' is not an int from 1 to 100")
    count = page.get_by_label("count")
    expect(count).to_have_attribute("aria-invalid", "true")
    expect(count).to_have_attribute("aria-describedby", re.compile(r"\berror-count\b"))
    assert api.get("/ga4gh/tes/v1/tasks").json()["tasks"] == before  # nothing was created
    check_page(page, "service")

    page.get_by_label("count").fill("15")
    page.get_by_role("button", name="Run").click()
    page.wait_for_url("**/ui/tasks/*")
    task_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#task-state")).to_have_text("QUEUED")
    reloads = no_reloads(page)
    assert api.post(f"/ga4gh/tes/v1/tasks/{blocker}:cancel").status_code == 200

    expect(page.locator("#task-state")).to_have_text("COMPLETE", timeout=LIVE)
    expect(page.locator("#log-stdout")).to_contain_text("step 15")
    assert reloads == []
    assert ended(api, task_id) == "COMPLETE"
    assert read_when_written(report) == "counted 15\n"


def test_a_raw_task_from_the_new_task_form(api: httpx.Client, page: Page, tmp_path: Path) -> None:
    out = tmp_path / "greeting.txt"
    page.goto("/ui/new")
    page.get_by_label("Name").fill("from the form")
    page.get_by_label("Command").fill("sh\n-c\necho hello from the form > /out/greeting.txt")
    page.get_by_label("Outputs").fill(f"/out/greeting.txt {out.as_uri()}")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#error-image")).to_be_visible()  # no image given
    expect(page.get_by_label("Image")).to_have_attribute("aria-invalid", "true")
    check_page(page, "new")

    page.get_by_label("Image").fill("localhost/toolship-busybox")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url("**/ui/tasks/*")
    task_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#task-state")).to_have_text("COMPLETE", timeout=LIVE)
    assert ended(api, task_id) == "COMPLETE"
    assert out.read_text() == "hello from the form\n"
