"""The TES v1.1 surface: views, list filters, pagination, cancel semantics, service-info."""

from __future__ import annotations

from typing import Any

import httpx

from toolship.models import ServiceInfo, Task

TES = "/ga4gh/tes/v1"


def create(api: httpx.Client, busybox: str, **extra: Any) -> str:
    doc = {"executors": [{"image": busybox, "command": ["echo", "hi"]}], **extra}
    r = api.post(f"{TES}/tasks", json=doc)
    assert r.status_code == 200, r.text
    task_id: str = r.json()["id"]
    return task_id


def wait(api: httpx.Client, task_id: str) -> None:
    r = api.get(f"/api/v1/tasks/{task_id}/wait", params={"timeout": 60})
    assert r.json()["final"], r.text


def test_views(api: httpx.Client, busybox: str) -> None:
    tid = create(api, busybox, inputs=[{"path": "/in/x", "content": "data"}], name="views")
    right_away = api.get(f"{TES}/tasks/{tid}", params={"view": "FULL"}).json()
    assert isinstance(right_away["logs"], list)  # well-formed even before it starts
    wait(api, tid)
    minimal = api.get(f"{TES}/tasks/{tid}").json()
    assert minimal == {"id": tid, "state": "COMPLETE"}
    basic = api.get(f"{TES}/tasks/{tid}", params={"view": "BASIC"}).json()
    assert "content" not in basic["inputs"][0]
    assert "stdout" not in basic["logs"][0]["logs"][0]
    full = api.get(f"{TES}/tasks/{tid}", params={"view": "FULL"}).json()
    assert full["logs"][0]["logs"][0]["stdout"] == "hi\n"
    assert full["inputs"][0]["content"] == "data"
    Task.model_validate(full)  # nothing outside the spec


def test_same_api_under_v1(api: httpx.Client, busybox: str) -> None:
    tid = create(api, busybox)
    assert api.get(f"/v1/tasks/{tid}").json()["id"] == tid
    assert api.get("/v1/service-info").json()["type"]["artifact"] == "tes"
    assert api.get("/v1/tasks/service-info").json()["type"]["artifact"] == "tes"


def test_service_info(api: httpx.Client) -> None:
    info = api.get(f"{TES}/service-info").json()
    ServiceInfo.model_validate(info)
    assert info["type"] == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}
    assert any(p.startswith("file://") for p in info["storage"])
    assert {"network", "timeout", "runtime"} <= set(info["tesResources_backend_parameters"])


def test_list_filters_and_pagination(api: httpx.Client, busybox: str) -> None:
    ids = [
        create(api, busybox, name=f"page-{i:02d}", tags={"batch": "p", "parity": str(i % 2)})
        for i in range(15)
    ]
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"name_prefix": "page-", "page_size": 4}
        if token:
            params["page_token"] = token
        page = api.get(f"{TES}/tasks", params=params).json()
        seen += [t["id"] for t in page["tasks"]]
        assert all(set(t) == {"id", "state"} for t in page["tasks"])  # MINIMAL by default
        token = page.get("next_page_token")
        if token:
            create(api, busybox, name="page-late")  # inserts must not disturb later pages
        else:
            break
    # newest first, each exactly once, and none of the later inserts slipped in
    assert seen == ids[::-1]
    odd = api.get(
        f"{TES}/tasks", params={"tag_key": ["batch", "parity"], "tag_value": ["p", "1"]}
    ).json()["tasks"]
    assert {t["id"] for t in odd} == set(ids[1::2])
    any_parity = api.get(f"{TES}/tasks", params={"tag_key": "parity"}).json()["tasks"]
    assert set(ids) <= {t["id"] for t in any_parity}
    basic = api.get(f"{TES}/tasks", params={"name_prefix": "page-0", "view": "BASIC"}).json()
    assert {t["name"] for t in basic["tasks"]} <= {f"page-0{i}" for i in range(10)}


def test_state_filter(api: httpx.Client, busybox: str) -> None:
    tid = create(api, busybox, name="statefilter")
    wait(api, tid)
    done = api.get(f"{TES}/tasks", params={"state": "COMPLETE", "name_prefix": "statefilter"})
    assert [t["id"] for t in done.json()["tasks"]] == [tid]
    queued = api.get(f"{TES}/tasks", params={"state": "QUEUED", "name_prefix": "statefilter"})
    assert queued.json()["tasks"] == []


def test_cancel_of_a_finished_task_is_a_no_op(api: httpx.Client, busybox: str) -> None:
    tid = create(api, busybox)
    wait(api, tid)
    r = api.post(f"{TES}/tasks/{tid}:cancel")
    assert r.status_code == 200 and r.json() == {}
    assert api.get(f"{TES}/tasks/{tid}").json()["state"] == "COMPLETE"


def test_unknown_backend_parameters_are_dropped_with_a_warning(
    api: httpx.Client, busybox: str
) -> None:
    tid = create(api, busybox, resources={"backend_parameters": {"VmSize": "huge"}})
    wait(api, tid)
    full = api.get(f"{TES}/tasks/{tid}", params={"view": "FULL"}).json()
    assert "VmSize" not in full["resources"].get("backend_parameters", {})
    assert any("VmSize" in line for line in full["logs"][0]["system_logs"])
