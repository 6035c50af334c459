"""The TES v1.1 surface: views, list filters, pagination, cancel semantics, service-info.

Moved here from tests/integration/test_tes_api.py: none of it needs a container.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import (
    BATCHES,
    TASKS,
    TES,
    Server,
    create,
    get,
    running,
    state_of,
    task,
    wait,
)
from toolship.compute.fake import FakeBackend
from toolship.models import ServiceInfo, Task


def test_views(api: httpx.Client) -> None:
    tid = create(api, "echo", "hi", inputs=[{"path": "/in/x", "content": "data"}], name="views")
    right_away = get(api, tid)
    assert isinstance(right_away["logs"], list)  # well-formed even before it starts
    assert wait(api, tid) == "COMPLETE"
    minimal = api.get(f"{TASKS}/{tid}").json()
    assert minimal == {"id": tid, "state": "COMPLETE"}
    basic = get(api, tid, "BASIC")
    assert "content" not in basic["inputs"][0]
    assert "stdout" not in basic["logs"][0]["logs"][0]
    assert "system_logs" not in basic["logs"][0]
    full = get(api, tid)
    assert full["logs"][0]["logs"][0]["stdout"] == "hi\n"
    assert full["inputs"][0]["content"] == "data"
    Task.model_validate(full)  # nothing outside the spec


def test_a_full_view_has_the_attempt_and_executor_times_of_the_clock(
    api: httpx.Client, fake: FakeBackend
) -> None:
    tid = create(api, "sleep", "90")
    running(api, fake, tid)
    started = get(api, tid)
    assert started["state"] == "RUNNING"
    assert started["logs"][0]["start_time"] == fake.clock.rfc3339()
    fake.clock.advance(90)
    assert wait(api, tid) == "COMPLETE"
    attempt = get(api, tid)["logs"][0]
    assert attempt["end_time"] == fake.clock.rfc3339()
    (executor,) = attempt["logs"]
    assert executor["exit_code"] == 0
    assert executor["start_time"] == started["logs"][0]["start_time"]
    assert executor["end_time"] == attempt["end_time"]


def test_exit_codes_and_system_failures_end_the_task_as_tes_says(api: httpx.Client) -> None:
    failed = create(api, "exit", "3")
    broken = create(api, "fail", "the", "node", "vanished")
    assert wait(api, failed) == "EXECUTOR_ERROR"
    assert get(api, failed)["logs"][0]["logs"][0]["exit_code"] == 3
    assert wait(api, broken) == "SYSTEM_ERROR"
    assert get(api, broken)["logs"][0]["system_logs"] == ["the node vanished"]


def test_same_api_under_v1(api: httpx.Client) -> None:
    tid = create(api)
    assert api.get(f"/v1/tasks/{tid}").json()["id"] == tid
    assert api.get("/v1/service-info").json()["type"]["artifact"] == "tes"


def test_tes_1_0_service_info_at_its_own_path(api: httpx.Client) -> None:
    # TES 1.0's path, asked by py-tes 0.4 (Snakemake's and Toil's TES plugins), which
    # accepts only TES 1.0's fields: name, doc, storage
    legacy = api.get("/v1/tasks/service-info").json()
    assert set(legacy) == {"name", "doc", "storage"}
    current = api.get(f"{TES}/service-info").json()
    assert legacy == {
        "name": current["name"],
        "doc": current["description"],
        "storage": current["storage"],
    }


def test_service_info(api: httpx.Client) -> None:
    info = api.get(f"{TES}/service-info").json()
    ServiceInfo.model_validate(info)
    assert info["type"] == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}
    assert any(p.startswith("file://") for p in info["storage"])
    assert {"network", "timeout", "runtime"} <= set(info["tesResources_backend_parameters"])
    assert info["environment"] == "production"


def test_service_info_names_the_embedded_server(server: Server) -> None:
    server.embedded = True
    with server.run() as api:
        assert api.get(f"{TES}/service-info").json()["environment"] == "embedded"


def test_list_filters_and_pagination(api: httpx.Client) -> None:
    ids = [create(api, name=f"page-{i:02d}", tags={"batch": "p", "parity": str(i % 2)})
           for i in range(15)]  # fmt: skip
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"name_prefix": "page-", "page_size": 4}
        if token:
            params["page_token"] = token
        page = api.get(TASKS, params=params).json()
        assert len(page["tasks"]) <= 4
        seen += [t["id"] for t in page["tasks"]]
        assert all(set(t) == {"id", "state"} for t in page["tasks"])  # MINIMAL by default
        token = page.get("next_page_token")
        if token:
            create(api, name="page-late")  # inserts must not disturb later pages
        else:
            break
    # newest first, each exactly once, and none of the later inserts slipped in
    assert seen == ids[::-1]
    odd = api.get(TASKS, params={"tag_key": ["batch", "parity"], "tag_value": ["p", "1"]})
    assert {t["id"] for t in odd.json()["tasks"]} == set(ids[1::2])
    any_parity = api.get(TASKS, params={"tag_key": "parity"}).json()["tasks"]
    assert set(ids) <= {t["id"] for t in any_parity}
    basic = api.get(TASKS, params={"name_prefix": "page-0", "view": "BASIC"}).json()
    assert {t["name"] for t in basic["tasks"]} <= {f"page-0{i}" for i in range(10)}
    assert len(basic["tasks"]) == 10


def test_a_page_of_the_default_size_and_the_full_view_of_a_list(api: httpx.Client) -> None:
    members = [task("echo", str(i), name="many") for i in range(300)]
    ids = api.post(BATCHES, json={"tasks": members}).json()["task_ids"]
    for tid in ids[-3:]:
        wait(api, tid)
    first = api.get(TASKS, params={"name_prefix": "many"}).json()
    assert len(first["tasks"]) == 256  # the default page size
    rest = api.get(TASKS, params={"name_prefix": "many", "page_token": first["next_page_token"]})
    assert [t["id"] for t in first["tasks"] + rest.json()["tasks"]] == ids[::-1]
    assert "next_page_token" not in rest.json()
    full = api.get(TASKS, params={"name_prefix": "many", "view": "FULL", "page_size": 1}).json()
    (newest,) = full["tasks"]
    assert newest["id"] == ids[-1]
    assert newest["logs"][0]["logs"][0]["stdout"] == "299\n"
    assert "system_logs" in newest["logs"][0]  # FULL keeps what BASIC drops


def test_state_filter(api: httpx.Client) -> None:
    tid = create(api, name="statefilter")
    wait(api, tid)
    done = api.get(TASKS, params={"state": "COMPLETE", "name_prefix": "statefilter"})
    assert [t["id"] for t in done.json()["tasks"]] == [tid]
    queued = api.get(TASKS, params={"state": "QUEUED", "name_prefix": "statefilter"})
    assert queued.json()["tasks"] == []


def test_state_filter_sees_running_and_queued_tasks(server: Server) -> None:
    with server.run(cpus=1) as api:
        first = create(api, "sleep", "5", name="busy")
        second = create(api, "sleep", "5", name="busy")
        running(api, server.fake, first)
        by_state = {
            s: [t["id"] for t in api.get(TASKS, params={"state": s}).json()["tasks"]]
            for s in ("RUNNING", "QUEUED", "COMPLETE")
        }
        assert by_state == {"RUNNING": [first], "QUEUED": [second], "COMPLETE": []}
        server.clock.advance(5)
        running(api, server.fake, second)
        server.clock.advance(5)
        assert wait(api, second) == "COMPLETE"


def test_cancel_of_a_finished_task_is_a_no_op(api: httpx.Client) -> None:
    tid = create(api)
    wait(api, tid)
    r = api.post(f"{TASKS}/{tid}:cancel")
    assert r.status_code == 200 and r.json() == {}
    assert api.get(f"{TASKS}/{tid}").json()["state"] == "COMPLETE"


def test_cancel_of_a_running_task_stops_its_executor(api: httpx.Client, fake: FakeBackend) -> None:
    tid = create(api, "sleep", "600")
    running(api, fake, tid)
    r = api.post(f"{TASKS}/{tid}:cancel")
    assert r.status_code == 200 and r.json() == {}
    assert wait(api, tid) == "CANCELED"
    attempt = get(api, tid)["logs"][0]
    assert attempt["system_logs"] == ["canceled by request"]
    assert attempt["logs"][0]["exit_code"] != 0  # stopped, never ran to its end


def test_cancel_of_a_queued_task_never_starts_it(server: Server) -> None:
    with server.run(cpus=1) as api:
        busy = create(api, "sleep", "10")
        queued = create(api, "echo", "never")
        running(api, server.fake, busy)
        assert state_of(api, queued) == "QUEUED"
        assert api.post(f"{TASKS}/{queued}:cancel").json() == {}
        assert state_of(api, queued) == "CANCELED"
        server.clock.advance(10)
        assert wait(api, busy) == "COMPLETE"
        assert [a.job.task_id for a in server.fake.attempts] == [busy]
        assert get(api, queued)["logs"] == []


def test_unknown_backend_parameters_are_dropped_with_a_warning(api: httpx.Client) -> None:
    tid = create(api, resources={"backend_parameters": {"VmSize": "huge"}})
    wait(api, tid)
    full = get(api, tid)
    assert "VmSize" not in full["resources"].get("backend_parameters", {})
    assert any("VmSize" in line for line in full["logs"][0]["system_logs"])


def test_a_task_over_its_timeout_is_killed(api: httpx.Client, fake: FakeBackend) -> None:
    tid = create(api, "sleep", "60", resources={"backend_parameters": {"timeout": "30s"}})
    running(api, fake, tid)
    fake.clock.advance(30)
    assert wait(api, tid) == "EXECUTOR_ERROR"
    assert get(api, tid)["logs"][0]["system_logs"] == [
        "executor 0 timed out after 30s and was killed"
    ]
