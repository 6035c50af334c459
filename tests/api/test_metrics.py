"""``/metrics``, scraped and parsed as Prometheus does: counts of tasks, starts, ends and
staged bytes, the API's latency by route template, the replica label, who may read it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.api.conftest import TASKS, TOKEN, Server, create, running, wait
from tests.api.principals import by, with_users
from tests.api.test_real_worker import local
from toolship.compute.fake import Run


def scrape(api: httpx.Client, **kw: str) -> list[Sample]:
    """Every sample /metrics serves, as Prometheus' own parser reads them."""
    reply = api.get("/metrics", headers=kw)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=")
    return [s for family in text_string_to_metric_families(reply.text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The one sample called ``name`` whose labels include ``labels``."""
    (found,) = [s for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return found.value


def test_tasks_by_state_queue_starts_ends_and_the_replica_label(server: Server) -> None:
    server.config["server"] = {"replica": "replica-a"}
    with server.run(cpus=1) as api:
        fake = server.fake
        fake.script("flaky", Run(system_error="node lost"), Run())
        assert wait(api, create(api, "echo", "hi")) == "COMPLETE"
        assert wait(api, create(api, "exit", "3")) == "EXECUTOR_ERROR"
        assert wait(api, create(api, "fail", "broken")) == "SYSTEM_ERROR"
        retried = create(api, name="flaky", resources={"backend_parameters": {"retries": "1"}})
        assert wait(api, retried) == "COMPLETE"
        sleeper = create(api, "sleep", "100")
        running(api, fake, sleeper)
        waiting = create(api, "sleep", "100")  # the only core is taken

        samples = scrape(api)
        assert {s.labels.get("replica") for s in samples} == {"replica-a"}
        by_state = {s.labels["state"]: s.value for s in samples if s.name == "toolship_tasks"}
        assert by_state["COMPLETE"] == 2 and by_state["EXECUTOR_ERROR"] == 1
        assert by_state["SYSTEM_ERROR"] == 1 and by_state["RUNNING"] == 1
        assert by_state["QUEUED"] == 1 and by_state["CANCELED"] == 0
        assert value(samples, "toolship_queue_length") == 1
        assert value(samples, "toolship_task_starts_total") == 6  # the retry is a start
        ends = {s.labels["state"]: s.value for s in samples if s.name == "toolship_task_ends_total"}
        assert ends == {"COMPLETE": 2, "EXECUTOR_ERROR": 1, "SYSTEM_ERROR": 1, "CANCELED": 0,
                        "PREEMPTED": 0}  # fmt: skip
        assert value(samples, "process_resident_memory_bytes") > 0  # prometheus-client's own

        for task_id in (waiting, sleeper):  # one cancelled in the queue, one while running
            assert api.post(f"{TASKS}/{task_id}:cancel").status_code == 200
            assert wait(api, task_id) == "CANCELED"
        samples = scrape(api)
        assert value(samples, "toolship_task_ends_total", state="CANCELED") == 2
        assert value(samples, "toolship_tasks", state="CANCELED") == 2
        assert value(samples, "toolship_queue_length") == 0
        assert value(samples, "toolship_task_starts_total") == 6  # the queued one never started


def test_latency_is_labelled_by_route_template_never_by_id(api: httpx.Client) -> None:
    task_id = create(api, "true")
    assert api.get(f"{TASKS}/{task_id}").status_code == 200
    assert api.get(f"{TASKS}/no-such-task").status_code == 404
    assert api.get(f"/v1/tasks/{task_id}").status_code == 200  # the same route, TES 1.0's path
    assert api.get("/ui/static/toolship.css").status_code == 200  # a mounted folder
    assert api.get("/no/such/route").status_code == 404
    samples = scrape(api)
    count = "toolship_http_request_duration_seconds_count"
    route = f"{TASKS}/{{id}}"
    assert value(samples, count, method="GET", route=route, status="2xx") == 1
    assert value(samples, count, method="GET", route=route, status="4xx") == 1
    assert value(samples, count, method="POST", route=TASKS, status="2xx") == 1
    assert value(samples, count, method="GET", route="/v1/tasks/{id}", status="2xx") == 1
    assert value(samples, count, method="GET", route="/ui/static", status="2xx") == 1
    assert value(samples, count, method="GET", route="unmatched", status="4xx") == 1
    buckets = [s for s in samples if s.name.endswith("_bucket") and s.labels["route"] == route]
    assert buckets and all(s.labels["le"] for s in buckets)
    labels = {v for s in samples for v in s.labels.values()}
    assert not any(task_id in v or "no-such" in v or ".css" in v for v in labels)


def test_staged_bytes_in_and_out_of_the_real_worker(server: Server, tmp_path: Path) -> None:
    server.config = {"local": {"runtime": "process", "accounting": False, "cpus": 2,
                               "memory_gb": 8}}  # fmt: skip
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 1000)
    delivered = tmp_path / "out" / "copy.bin"
    with server.run(local) as api:
        task_id = create(
            api, "cp", "/in/data.bin", "/out/copy.bin",
            inputs=[{"path": "/in/data.bin", "url": f"file://{data}"}],
            outputs=[{"path": "/out/copy.bin", "url": f"file://{delivered}"}],
            resources={"backend_parameters": {"writable_inputs": "true"}},  # copied, not mounted
        )  # fmt: skip
        assert wait(api, task_id) == "COMPLETE"
        assert delivered.stat().st_size == 1000
        samples = scrape(api)
        assert value(samples, "toolship_staged_bytes_total", direction="in") == 1000
        assert value(samples, "toolship_staged_bytes_total", direction="out") == 1000


@pytest.fixture
def users(monkeypatch: pytest.MonkeyPatch) -> None:
    with_users(monkeypatch)  # carol is a viewer, root an admin


@pytest.mark.usefixtures("users")
def test_admins_read_metrics_by_default_and_viewers_are_told_how(server: Server) -> None:
    with server.run() as api:
        assert scrape(api, authorization=f"Bearer {TOKEN}")  # the server's token file
        assert scrape(api, **by("root"))
        refused = api.get("/metrics", headers=by("carol"))
        assert refused.status_code == 403
        assert "access.metrics = 'viewer'" in refused.json()["detail"]
        anonymous = api.get("/metrics", headers={"authorization": ""})
        assert anonymous.status_code == 401


@pytest.mark.usefixtures("users")
@pytest.mark.parametrize(("who", "anonymous"), [("viewer", 401), ("open", 200)])
def test_access_metrics_lets_viewers_or_anyone_read(
    server: Server, who: str, anonymous: int
) -> None:
    server.config |= {"access": {"metrics": who}, "server": {"replica": "r1"}}
    with server.run() as api:
        task_id = create(api, "true", name="private-analysis")
        assert wait(api, task_id) == "COMPLETE"
        assert scrape(api, **by("carol"))
        reply = api.get("/metrics", headers={"authorization": ""})
        assert reply.status_code == anonymous, reply.text
        text = api.get("/metrics").text
        assert "toolship_task_ends_total" in text  # counts only: no name, id or owner
        assert "private-analysis" not in text and task_id not in text and "admin" not in text
