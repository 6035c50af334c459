"""The web UI's batch pages in-process: progress by state, the report's chart and figures,
the Cancel batch button, and what another user's batch looks like (not there).

Time is the fake backend's clock, as in tests/api/test_batches.py: the report's
figures are the clock's, so the chart's bars are asserted exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import BATCHES, Server, running, task, wait
from tests.api.test_ui_forms import HX, login, user
from toolship.compute.fake import FakeBackend

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def ui(server: Server) -> Iterator[tuple[httpx.Client, str, FakeBackend]]:
    with server.run() as api:
        yield api, login(api, server.tokens[0]), server.fake


def batch(api: httpx.Client, doc: dict[str, Any], **headers: str) -> tuple[str, list[str]]:
    r = api.post(BATCHES, json=doc, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["id"], r.json()["task_ids"]


def test_a_sweeps_page_shows_progress_the_chart_and_its_figures(
    ui: tuple[httpx.Client, str, FakeBackend],
) -> None:
    api, _, fake = ui
    rows = [{"cpu": 1, "s": "40"}, {"cpu": 2, "s": "20"}, {"cpu": 4, "s": "600"}]
    template = task("sleep", "{s}", name=EVIL, resources={"cpu_cores": 1})
    batch_id, ids = batch(api, {"name": EVIL, "template": template, "params": rows,
                                "max_parallel": 1})  # fmt: skip
    running(api, fake, ids[0])
    fake.clock.advance(40)
    running(api, fake, ids[1])
    fake.clock.advance(20)
    assert wait(api, ids[1]) == "COMPLETE"
    running(api, fake, ids[2])

    page = api.get(f"/ui/batches/{batch_id}")
    assert page.status_code == 200
    html = page.text
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.search(r'<li data-state="COMPLETE">.*?<span class="num">2</span></li>', html, re.S)
    assert re.search(r'<li data-state="RUNNING">.*?<span class="num">1</span></li>', html, re.S)
    assert "2 of 3 finished" in html
    chart = re.search(r'<svg [^>]*id="chart-time"[^>]*>.*?</svg>', html, re.S)
    assert chart, html
    svg = chart.group(0)
    assert 'role="img"' in svg and 'aria-label="Run time and cost per task: 3 members' in svg
    assert "<title>Run time and cost per task</title>" in svg
    # The running member has run for no time yet: bars of 40 s, 20 s and 0 s, the longest 360px.
    widths = [float(w) for w in re.findall(r'<rect class="state-\w+"[^>]* width="([\d.]+)"', svg)]
    assert widths == [360.0, 180.0, 0.0]
    assert "cpu=1, s=40" in svg and "40s" in svg
    figures = re.search(r'<table id="member-figures">.*?</table>', html, re.S)
    assert figures and figures.group(0).count("<tr>") == 4  # the heading and a row per member
    assert '<table id="scaling-figures">' in html and 'id="chart-scaling"' in html
    assert f'href="/ui/tasks?batch={batch_id}"' in html  # without JavaScript
    assert f'hx-get="/ui/tasks/rows?batch={batch_id}"' in html  # the members' table
    rows = api.get("/ui/tasks/rows", params={"batch": batch_id, "state": "COMPLETE"}).text
    assert rows.count('<tr id="task-') == 2 and EVIL not in rows
    assert "Cancel batch" in html  # one member is still running

    listed = api.get("/ui/batches").text
    assert f'href="/ui/batches/{batch_id}"' in listed and EVIL not in listed
    assert 'aria-label="2 of 3 finished"' in listed


def test_cancel_batch_cancels_its_unfinished_members_with_the_csrf_token_only(
    ui: tuple[httpx.Client, str, FakeBackend],
) -> None:
    api, csrf, fake = ui
    doc = {"template": task("sleep", "60"), "params": [{"i": i} for i in range(3)],
           "max_parallel": 1}  # fmt: skip
    batch_id, ids = batch(api, doc)
    running(api, fake, ids[0])
    path = f"/ui/batches/{batch_id}/cancel"
    assert api.post(path, headers=HX).status_code == 403
    assert wait_not_final(api, ids[1])
    r = api.post(path, headers={**HX, "X-CSRF-Token": csrf})
    assert r.status_code == 204 and r.headers["HX-Redirect"] == f"/ui/batches/{batch_id}"
    assert [wait(api, i) for i in ids] == ["CANCELED"] * 3
    page = api.get(f"/ui/batches/{batch_id}").text
    assert "Cancel batch" not in page
    assert re.search(r'<li data-state="CANCELED">.*?<span class="num">3</span></li>', page, re.S)
    events = api.get("/api/v1/events").json()["events"]
    assert any(e["action"] == "batch.cancel" and e["target"] == batch_id for e in events)
    plain = api.post(path, data={"csrf": csrf})  # without JavaScript: back to the page
    assert plain.status_code == 303 and plain.headers["location"] == f"/ui/batches/{batch_id}"


def wait_not_final(api: httpx.Client, task_id: str) -> bool:
    state: str = api.get(f"/ga4gh/tes/v1/tasks/{task_id}").json()["state"]
    return state in ("QUEUED", "INITIALIZING", "RUNNING")


def test_another_users_batch_is_not_there_and_a_viewer_cannot_cancel(
    ui: tuple[httpx.Client, str, FakeBackend],
) -> None:
    api, _, _ = ui
    alice, bob, carol = (user(api, n, r) for n, r in
                         (("alice", "user"), ("bob", "user"), ("carol", "viewer")))  # fmt: skip
    batch_id, _ = batch(
        api, {"template": task("sleep", "60"), "params": [{"i": 1}]},
        Authorization=f"Bearer {alice}",
    )  # fmt: skip
    api.cookies.clear()
    bob_csrf = login(api, bob)
    hidden = api.get(f"/ui/batches/{batch_id}")
    assert hidden.status_code == 404
    assert batch_id not in api.get("/ui/batches").text
    cancel = f"/ui/batches/{batch_id}/cancel"
    assert api.post(cancel, headers={**HX, "X-CSRF-Token": bob_csrf}).status_code == 404
    api.cookies.clear()
    carol_csrf = login(api, carol)
    assert api.post(cancel, headers={**HX, "X-CSRF-Token": carol_csrf}).status_code == 403
    assert api.get(f"{BATCHES}/{batch_id}").json()["counts"] != {"CANCELED": 1}
    assert api.get("/ui/batches/nope").status_code == 404
