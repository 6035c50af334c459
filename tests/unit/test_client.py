"""The SDK against a scripted server (httpx's MockTransport): what it sends, and the typed
objects it returns, which print back as the very documents the server sent (--json)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from toolship import Client, Conflict, NotFound, ServerUnavailable, TaskState, View
from toolship.cli.format import wire_json
from toolship.models import BatchInfo, BatchReport, OutputFileLog, TaskDetails, TaskView
from toolship.spec import build_task

TES = "/ga4gh/tes/v1"
Reply = Callable[[httpx.Request], object]

BASIC = {
    "id": "t1",
    "state": "COMPLETE",
    "name": "n",
    "inputs": [{"path": "/work/cfg", "type": "FILE"}],  # content is left out of BASIC
    "outputs": [{"path": "/work/o", "url": "file:///tmp/o", "type": "FILE"}],
    "resources": {"cpu_cores": 2, "ram_gb": 0.5, "backend_parameters": {"runtime": "process"}},
    "executors": [{"image": "img", "command": ["x"], "workdir": "/work"}],
    "creation_time": "2024-01-01T00:00:00Z",
    "logs": [
        {
            "logs": [{"start_time": "a", "end_time": "b", "exit_code": 3}],
            "outputs": [{"url": "file:///tmp/o", "path": "/work/o", "size_bytes": "5"}],
            "start_time": "a",
            "end_time": "b",
            "metadata": {"toolship.cpu_seconds": "0.1"},
        }
    ],
}
INFO = {
    "id": "b1",
    "name": None,
    "kind": "map",
    "creation_time": "2024-01-01T00:00:00Z",
    "size": 3,
    "state": "RUNNING",
    "counts": {"QUEUED": 1, "COMPLETE": 2},
    "max_parallel": None,
    "priority": 0,
    "timeout": None,
    "map": {"over": "s3://b/*.dat", "chunk": 1, "to": "s3://b/out/", "objects": 3},
}
MEMBER = {
    "id": "t1", "name": None, "state": "COMPLETE", "params": {"cpu": "2"}, "cpus": 2,
    "memory_gb": 0.0, "gpus": 0, "attempts": 1, "wall_seconds": 1.5, "run_seconds": 1.0,
    "cpu_seconds": None, "peak_memory_bytes": None, "cost": 0.0, "start": "a", "end": "b",
}  # fmt: skip
TOTALS = {
    "members": 1, "counts": {"COMPLETE": 1}, "attempts": 1, "wall_seconds": 1.5,
    "run_seconds": 1.0, "cpu_seconds": None, "peak_memory_bytes": None, "cost": 0.0,
    "turnaround_seconds": 1.5,
}  # fmt: skip
REPORT = {
    "batch": INFO,
    "currency": "EUR",
    "prices": {"core_hour": 0.0, "gb_hour": 0.0, "gpu_hour": 0.0, "currency": "EUR"},
    "totals": TOTALS,
    "members": [MEMBER],
    "scaling": {
        "parameter": "cpu",
        "points": [{"n": 2, "members": 1, "run_seconds": 1.0, "speedup": 1.0, "efficiency": 0.5}],
    },
}


class Server:
    """Answers each (method, path) with a scripted body; remembers what it was sent."""

    def __init__(self, routes: dict[tuple[str, str], Reply]) -> None:
        self.routes = routes
        self.sent: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        reply = self.routes.get((request.method, request.url.path))
        if reply is None:
            return httpx.Response(404, json={"detail": f"no {request.url.path}"})
        body = reply(request)
        return body if isinstance(body, httpx.Response) else httpx.Response(200, json=body)

    def client(self) -> Client:
        return Client("http://toolship.test", "token", transport=httpx.MockTransport(self))

    def body(self, index: int = -1) -> object:
        return json.loads(self.sent[index].content)


def test_submit_sends_the_built_task_and_get_returns_the_tes_model() -> None:
    server = Server(
        {
            ("POST", f"{TES}/tasks"): lambda _: {"id": "t1"},
            ("GET", f"{TES}/tasks/t1"): lambda _: BASIC,
        }
    )
    task = server.client().submit("img", ["x"], cpu=2, memory="512M", runtime="process")
    assert task.id == "t1"
    assert server.body() == build_task("img", ["x"], cpu=2, memory="512M", runtime="process")
    info = task.info(View.BASIC)
    assert isinstance(info, TaskView)
    assert info.state is TaskState.COMPLETE
    assert info.inputs is not None and info.inputs[0].content is None
    assert server.sent[-1].url.params["view"] == "BASIC"
    assert task.outputs == [OutputFileLog(url="file:///tmp/o", path="/work/o", size_bytes="5")]
    assert task.exit_codes == [3]
    assert json.loads(wire_json(info)) == BASIC


def test_details_print_as_sent() -> None:
    details = {
        "task": BASIC, "runtime": "process", "isolated": False, "attempt_dir": None,
        "executor": 1, "phase": None, "running_executor_start": None,
        "staged": {"files": 1, "bytes": 5}, "slurm": None,
    }  # fmt: skip
    server = Server({("GET", "/api/v1/tasks/t1"): lambda _: details})
    got = server.client().details("t1")
    assert isinstance(got, TaskDetails)
    assert got.staged is not None and got.staged.bytes == 5
    assert not got.isolated
    assert json.loads(wire_json(got)) == details


def test_sweep_and_map_put_the_batch_fields_on_the_batch() -> None:
    server = Server({("POST", "/api/v1/batches"): lambda _: {"id": "b1", "task_ids": ["t1"]}})
    client = server.client()
    batch = client.sweep(
        "img", ["echo", "{n}"], {"n": [1, 2]},
        max_parallel=2, priority=5, batch_timeout="1h", batch_name="s", cpu=2,
    )  # fmt: skip
    assert (batch.id, batch.task_ids) == ("b1", ["t1"])
    assert server.body() == {
        "template": build_task("img", ["echo", "{n}"], cpu=2),
        "params": [{"n": "1"}, {"n": "2"}],
        "max_parallel": 2,
        "priority": 5,
        "timeout": "1h",
        "name": "s",
    }
    client.map("img", ["wc"], over="s3://b/*", to="s3://b/out/", reduce=("img", ["cat"]))
    assert server.body() == {
        "template": build_task("img", ["wc"]),
        "map": {"over": "s3://b/*", "to": "s3://b/out/", "chunk": 1},
        "reduce": build_task("img", ["cat"]),
    }
    with pytest.raises(TypeError, match="'max_paralel'"):
        client.sweep("img", ["x"], [{"n": 1}], max_paralel=2)  # type: ignore[call-arg]


def test_batch_replies_are_typed_and_print_as_sent() -> None:
    server = Server(
        {
            ("GET", "/api/v1/batches/b1"): lambda _: INFO,
            ("GET", "/api/v1/batches"): lambda _: {"batches": [INFO]},
            ("GET", "/api/v1/batches/b1/report"): lambda _: REPORT,
            ("POST", "/api/v1/batches/b1:cancel"): lambda _: {"id": "b1", "canceled": 1},
        }
    )
    client = server.client()
    batch = client.batch("b1")
    info = batch.info()
    assert isinstance(info, BatchInfo)
    assert info.state is TaskState.RUNNING and info.active
    assert info.counts == {TaskState.QUEUED: 1, TaskState.COMPLETE: 2}
    assert json.loads(wire_json(info)) == INFO
    assert json.loads(wire_json(client.batches())) == [INFO]
    report = batch.report()
    assert isinstance(report, BatchReport)
    assert report.scaling is not None and report.scaling.points[0].efficiency == 0.5
    assert json.loads(wire_json(report)) == REPORT
    assert batch.cancel() == 1


def test_tasks_pages_through_every_page() -> None:
    def page(request: httpx.Request) -> object:
        token = request.url.params.get("page_token")
        if token is None:
            return {"tasks": [{"id": "a", "state": "RUNNING"}], "next_page_token": "2"}
        return {"tasks": [{"id": "b", "state": "QUEUED"}]}

    server = Server({("GET", f"{TES}/tasks"): page})
    listed = list(server.client().tasks(tags={"k": "v"}, batch="b1", view="MINIMAL"))
    assert [(t.id, t.state) for t in listed] == [("a", TaskState.RUNNING), ("b", TaskState.QUEUED)]
    assert server.sent[0].url.params.get_list("tag_key") == ["k", "toolship.batch"]
    assert server.sent[0].url.params.get_list("tag_value") == ["v", "b1"]


def test_errors_are_the_toolship_errors() -> None:
    server = Server(
        {("POST", f"{TES}/tasks/t1:cancel"): lambda _: httpx.Response(409, json={"detail": "no"})}
    )
    client = server.client()
    with pytest.raises(Conflict, match="no"):
        client.cancel("t1")
    with pytest.raises(NotFound):
        client.get("t2")


def test_a_proxys_bad_gateway_names_the_cause_and_what_to_do() -> None:
    """nginx in front of replicas answers 502 when the replica dies under a request: the
    SDK says so, not nginx's HTML page."""
    page = "<html><head><title>502 Bad Gateway</title></head></html>"
    server = Server({("POST", f"{TES}/tasks"): lambda _: httpx.Response(502, text=page)})
    with pytest.raises(ServerUnavailable) as raised:
        server.client().submit("busybox", ["true"])
    message = str(raised.value)
    assert "proxy in front of toolship at toolship.test answered 502 Bad Gateway" in message
    assert "look for them (by name or tag) before sending it again" in message
    assert "<html>" not in message
