"""The rerun routes' refusals, in process: each names its cause and its fix."""

from __future__ import annotations

import httpx

from tests.api.conftest import create, wait


def test_rerun_and_verify_refuse_what_they_cannot_do(api: httpx.Client) -> None:
    r = api.post("/api/v1/tasks/nope/rerun", json={})
    assert r.status_code == 404 and "no task with id 'nope'" in r.text
    done = create(api, "true")
    assert wait(api, done) == "COMPLETE"
    # The fake backend runs no image, so nothing says which digest ran.
    r = api.post(f"/api/v1/tasks/{done}/rerun", json={})
    assert r.status_code == 409 and "no image digest for executor 0 (busybox)" in r.text
    r = api.post(f"/api/v1/tasks/{done}/rerun", json={"outputs": 3})
    assert r.status_code == 400
    r = api.get(f"/api/v1/tasks/{done}/verify")
    assert r.status_code == 400 and "?against=TASK_ID" in r.text
    r = api.get(f"/api/v1/tasks/{done}/verify", params={"against": done})
    assert r.status_code == 200
    assert r.json() == {
        "task": done, "against": done, "identical": [], "differing": [], "missing": [],
        "added": [],
    }  # fmt: skip
