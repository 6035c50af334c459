"""A client reads back the task it sent, nothing added; toolship's decisions live apart.

What the server decides for what a task leaves out (runtime, cores, memory limit) is
kept in its own record of the task: toolship's routes show it, every attempt runs
with it, whatever the server's defaults are by then, and TES clients never see it
(py-tes 0.4, which Snakemake's and Toil's TES plugins pin, cannot read a
``backend_parameters`` it did not send).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import text

from tests.api.conftest import Server, create, get, running, task, wait
from toolship.db.store import make_engine, migrate

SERVER_FIELDS = {"id", "state", "creation_time", "logs"}
BASES = ("/ga4gh/tes/v1", "/v1")


def sent_fields(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in SERVER_FIELDS}


def every_view(api: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    """The task as each TES route and view shows it (both bases, get and list)."""
    docs = []
    for base in BASES:
        for view in ("BASIC", "FULL"):
            docs.append(api.get(f"{base}/tasks/{task_id}", params={"view": view}).json())
            listed = api.get(f"{base}/tasks", params={"view": view}).json()["tasks"]
            docs += [t for t in listed if t["id"] == task_id]
    assert len(docs) == 8
    return docs


def test_a_task_without_resources_reads_back_without_any(api: httpx.Client) -> None:
    doc = task("echo", "hi", name="plain")
    tid = create(api, "echo", "hi", name="plain")
    assert wait(api, tid) == "COMPLETE"
    for shown in every_view(api, tid):
        assert sent_fields(shown) == doc  # no resources, no backend_parameters


def test_empty_resources_read_back_empty(api: httpx.Client) -> None:
    # py-tes 0.4 sends "resources": {} for a task that asks for nothing (Snakemake does)
    tid = create(api, resources={})
    for shown in every_view(api, tid):
        assert shown["resources"] == {}


def test_backend_parameters_read_back_exactly_as_sent(api: httpx.Client) -> None:
    resources = {"cpu_cores": 2, "backend_parameters": {"timeout": "1h", "priority": "3"}}
    tid = create(api, resources=resources)
    assert wait(api, tid) == "COMPLETE"
    for shown in every_view(api, tid):
        assert shown["resources"] == resources


def test_backend_parameters_are_normalised_as_tes_says(api: httpx.Client) -> None:
    # keys are case-insensitive; unsupported ones and credentials are neither stored nor echoed
    params = {"TimeOut": "1h", "VmSize": "huge", "s3_secret_access_key": "k"}
    tid = create(api, resources={"backend_parameters": params})
    for shown in every_view(api, tid):
        assert shown["resources"] == {"backend_parameters": {"timeout": "1h"}}


def test_toolship_routes_say_what_the_server_decided(server: Server) -> None:
    server.config = {"policy": {"runtimes": ["podman", "process"]}}
    with server.run() as api:
        say_what_the_server_decided(api)


def say_what_the_server_decided(api: httpx.Client) -> None:
    plain = create(api)
    details = api.get(f"/api/v1/tasks/{plain}").json()
    assert details["runtime"] == "podman" and details["isolated"]
    # local.default_cpus and local.default_memory_gb, enforced as a limit on this machine
    assert details["resources"] == {
        "cpu_cores": 1,
        "ram_gb": 2.0,
        "backend_parameters": {"runtime": "podman"},
    }
    assert "resources" not in details["task"]
    asked = create(api, resources={"cpu_cores": 3, "backend_parameters": {"runtime": "process"}})
    details = api.get(f"/api/v1/tasks/{asked}").json()
    assert details["runtime"] == "process" and not details["isolated"]
    assert details["resources"] == {
        "cpu_cores": 3,
        "ram_gb": 2.0,
        "backend_parameters": {"runtime": "process"},
    }
    assert details["task"]["resources"] == {
        "cpu_cores": 3,
        "backend_parameters": {"runtime": "process"},
    }


def test_a_restart_with_new_defaults_runs_queued_tasks_as_they_were_accepted(
    server: Server,
) -> None:
    server.config = {"local": {"runtime": "podman", "default_cpus": 1, "default_memory_gb": 2}}
    with server.run(cpus=1) as api:
        busy = create(api, "sleep", "30")
        queued = create(api, "echo", "later")
        running(api, server.fake, busy)
    server.config = {"local": {"runtime": "docker", "default_cpus": 2, "default_memory_gb": 1}}
    with server.run(cpus=4) as api:
        assert wait(api, queued) == "COMPLETE"
        (attempt,) = [a for a in server.fake.attempts if a.job.task_id == queued]
        options = attempt.job.options
        assert (options.runtime, options.cpus, options.memory_gb) == ("podman", 1, 2.0)
        assert options.memory_limited
        assert "resources" not in get(api, queued)
        fresh = create(api)  # a task accepted now gets the new defaults
        assert api.get(f"/api/v1/tasks/{fresh}").json()["resources"] == {
            "cpu_cores": 2,
            "ram_gb": 1.0,
            "backend_parameters": {"runtime": "docker"},
        }


def _old_database(server: Server, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    """A database as toolship left it before 0005: admission's decisions inside the task."""
    engine = make_engine(server.settings().database_url)
    if engine.dialect.name == "postgresql":  # the test's own database, made at head
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    migrate(engine, "0004")
    with engine.begin() as conn:
        for task_id, state, spec in rows:
            conn.execute(
                text(
                    "INSERT INTO tasks (id, state, creation_time, cpus, memory_gb, spec) "
                    "VALUES (:id, :state, '2026-01-01T00:00:00Z', 1, 2.0, :spec)"
                ),
                {"id": task_id, "state": state, "spec": json.dumps(spec)},
            )
    engine.dispose()


def test_tasks_stored_before_the_change_lose_the_echoed_runtime_and_keep_running_it(
    server: Server,
) -> None:
    pinned = task(resources={"cpu_cores": 1, "ram_gb": 2.0,
                             "backend_parameters": {"runtime": "docker"}})  # fmt: skip
    params = {"timeout": "1h", "runtime": "podman"}
    with_params = task(resources={"cpu_cores": 1, "backend_parameters": params})
    server.home.mkdir(parents=True)
    _old_database(server, [("old-queued", "QUEUED", pinned),
                                ("old-done", "COMPLETE", with_params)])  # fmt: skip
    with server.run() as api:
        assert wait(api, "old-queued") == "COMPLETE"
        (attempt,) = server.fake.attempts
        assert attempt.job.options.runtime == "docker" and attempt.job.options.memory_limited
        assert get(api, "old-queued")["resources"] == {"cpu_cores": 1, "ram_gb": 2.0}
        assert get(api, "old-done")["resources"] == {
            "cpu_cores": 1,
            "backend_parameters": {"timeout": "1h"},
        }
        details = api.get("/api/v1/tasks/old-done").json()
        assert details["runtime"] == "podman"
        assert details["resources"]["backend_parameters"] == {"timeout": "1h", "runtime": "podman"}
        assert "ram_gb" not in details["resources"]  # its memory was not limited
