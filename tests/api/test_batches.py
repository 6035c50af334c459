"""Batches, dependencies, retries, throttles and priorities, through the API, in process.

Time is the fake backend's clock: a member that "sleeps" runs until the test
advances it, so what runs at once is asserted, not measured.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import (
    BATCHES,
    TASKS,
    Server,
    create,
    get,
    running,
    state_of,
    task,
    until,
    wait,
)
from toolship.compute.fake import FakeBackend, Run


def params(**values: str) -> dict[str, Any]:
    return {"resources": {"backend_parameters": values}}


def batch(api: httpx.Client, doc: dict[str, Any]) -> tuple[str, list[str]]:
    r = api.post(BATCHES, json=doc)
    assert r.status_code == 200, r.text
    return r.json()["id"], r.json()["task_ids"]


def summary(api: httpx.Client, batch_id: str) -> dict[str, Any]:
    r = api.get(f"{BATCHES}/{batch_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def members(api: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    """The members (FULL view), in creation order."""
    r = api.get(TASKS, params={"tag_key": "toolship.batch", "tag_value": batch_id,
                               "view": "FULL"})  # fmt: skip
    return r.json()["tasks"][::-1]


def test_a_sweep_makes_one_member_per_row_with_its_values(api: httpx.Client) -> None:
    template = task("echo", "lr={lr}", "width={width}", name="train-{lr}-{width}")
    rows = [{"lr": lr, "width": w} for lr in ("0.1", "0.01") for w in ("100", "200")]
    batch_id, ids = batch(api, {"template": template, "params": rows, "name": "grid"})
    assert len(ids) == 4
    for tid in ids:
        assert wait(api, tid) == "COMPLETE"
    info = summary(api, batch_id)
    assert info["state"] == "COMPLETE" and info["counts"] == {"COMPLETE": 4}, info
    assert info["kind"] == "sweep" and info["size"] == 4 and info["name"] == "grid"
    got = {t["name"]: t["logs"][-1]["logs"][0]["stdout"] for t in members(api, batch_id)}
    assert got == {f"train-{r['lr']}-{r['width']}": f"lr={r['lr']} width={r['width']}\n"
                   for r in rows}  # fmt: skip
    for t in members(api, batch_id):
        assert t["tags"]["toolship.batch"] == batch_id
    listed = api.get(BATCHES).json()["batches"]
    assert [b["id"] for b in listed] == [batch_id]


def test_batch_counts_follow_their_members(api: httpx.Client, fake: FakeBackend) -> None:
    doc = {"tasks": [task("sleep", "10"), task("exit", "2"), task("sleep", "20")]}
    batch_id, (slow, failing, slower) = batch(api, doc)
    assert wait(api, failing) == "EXECUTOR_ERROR"
    running(api, fake, slow, slower)
    info = summary(api, batch_id)
    assert info["kind"] == "tasks"
    assert info["state"] == "RUNNING" and info["counts"] == {"EXECUTOR_ERROR": 1, "RUNNING": 2}
    fake.clock.advance(20)
    wait(api, slow)
    wait(api, slower)
    info = summary(api, batch_id)
    assert info["state"] == "EXECUTOR_ERROR", info  # the worst ending
    assert info["counts"] == {"COMPLETE": 2, "EXECUTOR_ERROR": 1}


def test_max_parallel_is_never_exceeded(api: httpx.Client, fake: FakeBackend) -> None:
    rows = [{"n": str(i)} for i in range(5)]
    doc = {"template": task("sleep", "10"), "params": rows, "max_parallel": 2}
    batch_id, ids = batch(api, doc)
    for step in range(3):
        now = [t for t in ids if state_of(api, t) == "RUNNING"]
        expected = ids[2 * step : 2 * step + 2]
        running(api, fake, *expected)
        now = [t for t in ids if state_of(api, t) == "RUNNING"]
        assert now == expected, (step, now)  # two at once, in order, never three
        fake.clock.advance(10)
        for t in expected:
            wait(api, t)
    assert summary(api, batch_id)["counts"] == {"COMPLETE": 5}


def test_cancel_a_batch_cancels_every_unfinished_member(
    api: httpx.Client, fake: FakeBackend
) -> None:
    doc = {"template": task("sleep", "60"), "params": [{"i": i} for i in range(5)],
           "max_parallel": 1}  # fmt: skip
    first = batch(api, {"tasks": [task()]})[1][0]
    wait(api, first)
    batch_id, ids = batch(api, doc)
    running(api, fake, ids[0])
    r = api.post(f"{BATCHES}/{batch_id}:cancel")
    assert r.status_code == 200 and r.json() == {"id": batch_id, "canceled": 5}
    for tid in ids:
        assert wait(api, tid) == "CANCELED"
    assert summary(api, batch_id)["counts"] == {"CANCELED": 5}
    assert [a.job.task_id for a in fake.attempts] == [first, ids[0]]  # the rest never ran
    again = api.post(f"{BATCHES}/{batch_id}:cancel")
    assert again.json() == {"id": batch_id, "canceled": 0}
    assert api.post(f"{BATCHES}/nope:cancel").status_code == 404
    assert api.get(f"{BATCHES}/nope").status_code == 404


def test_a_failed_parent_fails_its_child_and_cycles_are_refused(api: httpx.Client) -> None:
    parent = create(api, "exit", "4")
    child = create(api, "echo", "never", **params(after=parent))
    grandchild = create(api, "echo", "never", **params(after=child))
    assert wait(api, child) == "SYSTEM_ERROR"
    assert wait(api, grandchild) == "SYSTEM_ERROR"
    attempt = get(api, child)["logs"][-1]
    assert attempt["system_logs"] == [
        f"not run: task {parent}, which this task runs after, ended EXECUTOR_ERROR"
    ]
    assert attempt["logs"] == []  # it never ran

    ok = create(api, "echo", "first")
    after_ok = create(api, "echo", "second", **params(after=ok))
    assert wait(api, after_ok) == "COMPLETE"

    r = api.post(TASKS, json=task(**params(after="nosuch")))
    assert r.status_code == 400 and "no task with id 'nosuch'" in r.json()["detail"], r.text

    def member(after: str) -> dict[str, Any]:
        return task(**params(after=after))

    r = api.post(BATCHES, json={"tasks": [member("@1"), member("@2"), member("@0")]})
    assert r.status_code == 400
    assert "cycle (@0 → @1 → @2 → @0, where → reads 'runs after')" in r.json()["detail"]
    r = api.post(BATCHES, json={"tasks": [member("@0")]})
    assert r.status_code == 400 and "after itself" in r.json()["detail"]
    r = api.post(BATCHES, json={"tasks": [member("@5")]})
    assert r.status_code == 400 and "@5" in r.json()["detail"]


def test_a_chain_inside_one_batch_runs_in_order(api: httpx.Client, fake: FakeBackend) -> None:
    doc = {"tasks": [task("sleep", "5", **params(after="@1")), task("sleep", "5")]}
    _, (first, second) = batch(api, doc)
    running(api, fake, second)
    assert state_of(api, first) == "QUEUED"  # held for its parent
    fake.clock.advance(5)
    running(api, fake, first)
    fake.clock.advance(5)
    assert wait(api, first) == "COMPLETE"
    a, b = get(api, first)["logs"][-1], get(api, second)["logs"][-1]
    assert a["start_time"] >= b["end_time"]


def test_a_cancelled_parent_fails_its_held_child(api: httpx.Client, fake: FakeBackend) -> None:
    parent = create(api, "sleep", "60")
    child = create(api, **params(after=parent))
    running(api, fake, parent)
    api.post(f"{TASKS}/{parent}:cancel")
    assert wait(api, child) == "SYSTEM_ERROR"
    assert get(api, child)["logs"][-1]["system_logs"] == [
        f"not run: task {parent}, which this task runs after, was cancelled"
    ]


def test_retry_on_exit_75_until_success_and_exit_1_is_not_retried(
    api: httpx.Client, fake: FakeBackend
) -> None:
    fake.script("flaky", Run(exit_code=75, stdout="try\n"), Run(exit_code=75), Run(stdout="ok\n"))
    tid = create(api, name="flaky", **params(retries="3", retry_on="exit:75"))
    assert wait(api, tid) == "COMPLETE"
    logs = get(api, tid)["logs"]
    assert len(logs) == 3
    assert [a["logs"][-1]["exit_code"] for a in logs] == [75, 75, 0]
    assert [a["logs"][-1]["stdout"] for a in logs] == ["try\n", "", "ok\n"]
    assert "retrying (attempt 2 of at most 4)" in " ".join(logs[0]["system_logs"])
    assert [a.job.attempt_number for a in fake.attempts] == [1, 2, 3]

    once = create(api, "exit", "1", **params(retries="3", retry_on="exit:75"))
    assert wait(api, once) == "EXECUTOR_ERROR"
    assert len(get(api, once)["logs"]) == 1


def test_system_errors_are_retried_by_default_until_the_attempts_run_out(
    api: httpx.Client,
) -> None:
    tid = create(api, "fail", "node", "lost", **params(retries="2"))
    assert wait(api, tid) == "SYSTEM_ERROR"
    logs = get(api, tid)["logs"]
    assert len(logs) == 3
    assert all("node lost" in a["system_logs"] for a in logs)


def test_bad_retry_options_are_refused(api: httpx.Client) -> None:
    r = api.post(TASKS, json=task(**params(retries="2", retry_on="exit:seventy")))
    assert r.status_code == 400 and "exit:75" in r.json()["detail"], r.text
    r = api.post(TASKS, json=task(**params(retry_on="oom")))
    assert r.status_code == 400 and "needs retries" in r.json()["detail"], r.text


def test_higher_priority_starts_first_when_capacity_frees(server: Server) -> None:
    with server.run(cpus=1) as api:
        fake = server.fake
        busy = create(api, "sleep", "10")
        running(api, fake, busy)
        low = create(api, "sleep", "10", name="low")
        high = create(api, "sleep", "10", name="high", **params(priority="5"))
        fake.clock.advance(10)
        running(api, fake, high)
        assert state_of(api, low) == "QUEUED"
        fake.clock.advance(10)
        running(api, fake, low)
        fake.clock.advance(10)
        assert wait(api, low) == "COMPLETE"
    assert [a.job.task.name for a in fake.attempts] == [None, "high", "low"]


def test_a_task_bigger_than_the_backend_is_refused_at_creation(server: Server) -> None:
    with server.run(cpus=2, memory_gb=4) as api:
        r = api.post(TASKS, json=task(resources={"cpu_cores": 3}))
        assert r.status_code == 400, r.text
        assert "more than the fake backend has" in r.json()["detail"]
        fits = api.post(TASKS, json=task(resources={"cpu_cores": 2, "ram_gb": 4}))
        assert fits.status_code == 200, fits.text


def test_tasks_share_the_capacity_and_wait_for_it(server: Server) -> None:
    with server.run(cpus=4) as api:
        fake = server.fake
        two = [create(api, "sleep", "10", resources={"cpu_cores": 2}) for _ in range(3)]
        running(api, fake, *two[:2])
        assert state_of(api, two[2]) == "QUEUED"
        fake.clock.advance(10)
        running(api, fake, two[2])
        fake.clock.advance(10)
        assert wait(api, two[2]) == "COMPLETE"
        until("capacity back", lambda: fake.free.cpus == 4)


def test_a_batch_timeout_cancels_its_unfinished_members(
    api: httpx.Client, fake: FakeBackend
) -> None:
    # The batch's deadline is the engine's own (wall clock): one second here.
    rows = [{"s": "0"}, {"s": "60"}, {"s": "60"}]
    doc = {"template": task("sleep", "{s}"), "params": rows, "max_parallel": 2, "timeout": "1s"}
    batch_id, ids = batch(api, doc)
    assert wait(api, ids[0]) == "COMPLETE"
    for tid in ids[1:]:
        assert wait(api, tid) == "CANCELED"
    info = summary(api, batch_id)
    assert info["counts"] == {"COMPLETE": 1, "CANCELED": 2}, info
    assert info["timeout"] == "1s"
    reasons = [t["logs"][-1]["system_logs"] for t in members(api, batch_id)[1:]]
    assert all(any("ran out of time (1s)" in line for line in r) for r in reasons), reasons


def test_the_report_of_a_sweep_has_each_members_times_on_the_clock(
    api: httpx.Client, fake: FakeBackend
) -> None:
    rows = [{"cpu": 1, "s": "40"}, {"cpu": 2, "s": "20"}]
    template = task("sleep", "{s}", resources={"cpu_cores": 1})
    batch_id, ids = batch(api, {"template": template, "params": rows, "max_parallel": 1})
    running(api, fake, ids[0])
    fake.clock.advance(40)
    running(api, fake, ids[1])
    fake.clock.advance(20)
    assert wait(api, ids[1]) == "COMPLETE"
    report = api.get(f"{BATCHES}/{batch_id}/report").json()
    assert report["batch"]["id"] == batch_id and report["batch"]["counts"] == {"COMPLETE": 2}
    assert [m["wall_seconds"] for m in report["members"]] == [40.0, 20.0]
    assert [m["run_seconds"] for m in report["members"]] == [40.0, 20.0]
    assert report["totals"]["wall_seconds"] == 60.0
    assert report["scaling"]["parameter"] == "cpu"
    # The documents keep their shape: every key, nulls included (the CLI's --json prints them).
    assert list(report) == ["batch", "currency", "prices", "totals", "members", "scaling"]
    assert list(report["batch"]) == [
        "id", "name", "kind", "creation_time", "size", "state", "counts",
        "max_parallel", "priority", "timeout", "map",
    ]  # fmt: skip
    assert report["batch"]["map"] is None and report["batch"]["name"] is None
    assert list(report["members"][0]) == [
        "id", "name", "state", "params", "cpus", "memory_gb", "gpus", "attempts",
        "wall_seconds", "run_seconds", "cpu_seconds", "peak_memory_bytes", "gpu_seconds",
        "gpu_busy_seconds", "gpu_memory_peak_bytes", "cost", "start", "end",
    ]  # fmt: skip
    assert report["members"][0]["params"] == {"cpu": "1", "s": "40"}
    assert list(report["totals"]) == [
        "members", "counts", "attempts", "wall_seconds", "run_seconds", "cpu_seconds",
        "peak_memory_bytes", "gpu_seconds", "gpu_busy_seconds", "gpu_memory_peak_bytes", "cost",
        "turnaround_seconds",
    ]  # fmt: skip
    assert report["scaling"]["points"][0] == {
        "n": 1,
        "members": 1,
        "run_seconds": 40.0,
        "speedup": 1.0,
        "efficiency": 1.0,
    }
    assert list(report["prices"]) == ["core_hour", "gb_hour", "gpu_hour", "currency"]


def test_a_member_on_two_nodes_reserved_and_costs_twice_one_node_s(server: Server) -> None:
    server.config = {"prices": {"core_hour": 3600.0, "gb_hour": 0.0, "currency": "EUR"}}
    with server.run(cpus=8, memory_gb=64) as api:
        fake = server.fake
        template = task("sleep", "10", resources={"cpu_cores": 2})
        doc = {"template": template, "params": [{"nodes": "1"}, {"nodes": "2"}],
               "max_parallel": 1}  # fmt: skip
        batch_id, ids = batch(api, doc)
        for task_id in ids:
            running(api, fake, task_id)
            fake.clock.advance(10)
            assert wait(api, task_id) == "COMPLETE"
        report = api.get(f"{BATCHES}/{batch_id}/report").json()
    one, two = report["members"]
    assert (one["cpus"], two["cpus"]) == (2, 4)  # the cores of every node
    assert one["cost"] == one["wall_seconds"] * 2 and two["cost"] == two["wall_seconds"] * 4
    assert report["scaling"]["parameter"] == "nodes"
