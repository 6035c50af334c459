"""The real local backend and worker, in process, with the fake runtime instead of podman.

Staging, the executors' exit files and captures, output delivery and the log routes
are the real code; only the container is not (toolship.runtime.fake maps the
executors' container paths to the host paths mounted there).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.api.conftest import Server, create, get, until, wait
from toolship.compute.local import LocalBackend
from toolship.config import Settings
from toolship.db import Store
from toolship.db.schema import attempt_images
from toolship.provenance.rerun import rerun_task
from toolship.runtime import Runtime
from toolship.runtime.fake import FakeRuntime
from toolship.storage import StorageRegistry
from toolship.supply.images import image_uses
from toolship.supply.reruns import RerunRequest


class FakeRuntimeBackend(LocalBackend):
    """The local backend, its executors run by the fake runtime."""

    def runtime(self, name: str) -> Runtime:
        return FakeRuntime()


def local(settings: Settings, storage: StorageRegistry) -> LocalBackend:
    return FakeRuntimeBackend(settings, storage)


@pytest.fixture
def real(server: Server) -> Server:
    # The process runtime by default: admission then asks for no container engine.
    server.config = {"local": {"runtime": "process", "accounting": False, "cpus": 2,
                               "memory_gb": 8}}  # fmt: skip
    return server


def test_inputs_are_staged_executors_run_and_outputs_delivered(
    real: Server, tmp_path: Path
) -> None:
    data = tmp_path / "data.txt"
    data.write_text("from a file\n")
    delivered = tmp_path / "delivered" / "copy.txt"
    with real.run(local) as api:
        tid = create(
            api, "cp", "/in/data.txt", "/out/copy.txt",
            inputs=[{"path": "/in/greeting", "content": "hello\n"},
                    {"path": "/in/data.txt", "url": f"file://{data}"}],
            outputs=[{"path": "/out/copy.txt", "url": f"file://{delivered}"}],
        )  # fmt: skip
        assert wait(api, tid) == "COMPLETE", get(api, tid)["logs"]
        doc = get(api, tid)
        assert delivered.read_text() == "from a file\n"
        (attempt,) = doc["logs"]
        assert attempt["logs"][0]["exit_code"] == 0
        assert attempt["outputs"] == [
            {"url": f"file://{delivered}", "path": "/out/copy.txt", "size_bytes": "12"}
        ]
        digest = hashlib.sha256(b"from a file\n").hexdigest()
        assert attempt["metadata"]["sha256:/out/copy.txt"] == digest


def test_stdout_is_captured_and_served_by_the_log_route(real: Server) -> None:
    with real.run(local) as api:
        tid = create(api, "cat", "/in/greeting",
                     inputs=[{"path": "/in/greeting", "content": "hello\n"}])  # fmt: skip
        assert wait(api, tid) == "COMPLETE", get(api, tid)["logs"]
        assert get(api, tid)["logs"][0]["logs"][0]["stdout"] == "hello\n"
        logs = api.get(f"/api/v1/tasks/{tid}/logs")
        assert logs.status_code == 200 and logs.text == "hello\n"
        details = api.get(f"/api/v1/tasks/{tid}").json()
        assert details["phase"] == "done" and Path(details["attempt_dir"]).is_dir()


def test_a_failing_executor_and_a_missing_image(real: Server) -> None:
    with real.run(local) as api:
        failing = create(api, "sh", "-c", "echo oops >&2; exit 3")
        assert wait(api, failing) == "EXECUTOR_ERROR"
        executor = get(api, failing)["logs"][0]["logs"][0]
        assert executor["exit_code"] == 3 and executor["stderr"] == "oops\n"
        doc = {"executors": [{"image": "missing/tool", "command": ["true"]}]}
        missing = api.post("/ga4gh/tes/v1/tasks", json=doc).json()["id"]
        assert wait(api, missing) == "SYSTEM_ERROR"
        system = " ".join(get(api, missing)["logs"][0]["system_logs"])
        assert "'missing/tool' is not available locally" in system


def test_identical_duplicate_inputs_are_staged_once_and_conflicting_ones_refused(
    real: Server, tmp_path: Path
) -> None:
    # cwl-tes sends one input twice when two workflow links carry it (CWL scatter tests).
    data = tmp_path / "data.txt"
    data.write_text("shared\n")
    same = {"path": "/in/data.txt", "url": f"file://{data}"}
    with real.run(local) as api:
        tid = create(api, "cat", "/in/data.txt", inputs=[same, dict(same)])
        assert wait(api, tid) == "COMPLETE", get(api, tid)["logs"]
        assert get(api, tid)["logs"][0]["logs"][0]["stdout"] == "shared\n"
        other = tmp_path / "other.txt"
        other.write_text("other\n")
        r = api.post(
            "/ga4gh/tes/v1/tasks",
            json={"executors": [{"image": "x", "command": ["true"]}],
                  "inputs": [same, {"path": "/in/data.txt", "url": f"file://{other}"}]},
        )  # fmt: skip
        assert r.status_code == 400, r.text
        detail = r.json()["detail"]
        assert "/in/data.txt" in detail and "different" in detail, detail


def test_the_log_route_gives_every_executor_in_order_past_empty_and_large_captures(
    real: Server,
) -> None:
    """Captures larger than a read, executors that print nothing, one executor alone."""
    big = "x" * 99 + "\n"  # 1 000 lines: 100 000 bytes, more than one chunk
    executors = [
        {"image": "x", "command": ["sh", "-c", f"for i in $(seq 1000); do echo {'x' * 99}; done"]},
        *[{"image": "x", "command": ["true"]}] * 50,
        {"image": "x", "command": ["echo", "last"]},
    ]
    with real.run(local) as api:
        tid = api.post("/ga4gh/tes/v1/tasks", json={"executors": executors}).json()["id"]
        assert wait(api, tid) == "COMPLETE", get(api, tid)["logs"]
        for follow in ("false", "true"):
            r = api.get(f"/api/v1/tasks/{tid}/logs", params={"follow": follow})
            assert r.text == big * 1000 + "last\n"
        one = api.get(f"/api/v1/tasks/{tid}/logs", params={"executor": 51})
        assert one.text == "last\n"
        assert api.get(f"/api/v1/tasks/{tid}/logs", params={"executor": 52}).status_code == 400


def test_following_the_log_waits_for_the_running_executor_and_ends_with_the_task(
    real: Server, tmp_path: Path
) -> None:
    """The follow request starts while the first executor runs (it waits for ``go``).

    The in-process transport hands back a body once it is complete: the whole
    followed log arrives when the task has ended, all of it and in order.
    """
    started, go = tmp_path / "started", tmp_path / "go"
    script = f"echo before; touch {started}; while [ ! -e {go} ]; do sleep 0.02; done; echo after"
    executors = [{"image": "x", "command": ["sh", "-c", script]},
                 {"image": "x", "command": ["echo", "second"]}]  # fmt: skip
    with real.run(local) as api, ThreadPoolExecutor(1) as pool:
        tid = api.post("/ga4gh/tes/v1/tasks", json={"executors": executors}).json()["id"]
        until("the first executor to start", started.exists)
        followed = pool.submit(api.get, f"/api/v1/tasks/{tid}/logs", params={"follow": "true"})
        go.touch()
        assert followed.result(60).text == "before\nafter\nsecond\n"
        assert wait(api, tid) == "COMPLETE"


def test_the_images_an_attempt_ran_are_recorded_and_indexed(real: Server) -> None:
    """Per executor, the digest and id the runtime found; indexed once the task ends."""
    executors = [{"image": "tool:1", "command": ["true"]},
                 {"image": "other@sha256:" + "ab" * 32, "command": ["true"]}]  # fmt: skip
    with real.run(local) as api:
        tid = api.post("/ga4gh/tes/v1/tasks", json={"executors": executors}).json()["id"]
        assert wait(api, tid) == "COMPLETE", get(api, tid)["logs"]
        uses = image_uses(get(api, tid)["logs"][0]["metadata"])
        assert [(u.executor, u.image) for u in uses] == [(0, "tool:1"), (1, executors[1]["image"])]
        assert uses[0].digest.startswith("sha256:") and uses[0].image_id.startswith("sha256:")
        assert uses[1].digest == "sha256:" + "ab" * 32  # what the reference pins
        store = Store.open(real.settings().database_url)
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(
                    attempt_images.c.attempt, attempt_images.c.executor, attempt_images.c.digest
                ).order_by(attempt_images.c.executor)
            ).all()
        store.close()
        assert [tuple(r) for r in rows] == [(1, 0, uses[0].digest), (1, 1, uses[1].digest)]


def test_a_task_rewriting_an_input_keeps_the_inputs_hash_for_provenance_and_rerun(
    real: Server,
) -> None:
    """Issue 16: the input's hash is what was read, the output's what was written."""
    doc = {
        "inputs": [
            {"path": "/work/data.txt", "content": "original\n"},
            {"path": "/in/new.txt", "content": "changed\n"},
        ],
        "outputs": [{"path": "/work/data.txt", "url": "file:///dev/null/unused"}],
        "executors": [{"image": "x", "command": ["cp", "/in/new.txt", "/work/data.txt"]}],
    }
    with real.run(local) as api:
        out = real.home.parent / "delivered.txt"
        doc["outputs"][0]["url"] = f"file://{out}"  # type: ignore[index]
        tid = api.post("/ga4gh/tes/v1/tasks", json=doc).json()["id"]
        assert wait(api, tid) == "COMPLETE", get(api, tid)["logs"]
        assert out.read_text() == "changed\n"
        sha = {t: hashlib.sha256(t.encode()).hexdigest() for t in ("original\n", "changed\n")}
        record = api.get(f"/api/v1/tasks/{tid}/provenance").json()
        [attempt] = record["attempts"]
        inputs = {i["path"]: i["sha256"] for i in attempt["inputs"]}
        assert inputs["/work/data.txt"] == sha["original\n"]
        assert [o["sha256"] for o in attempt["outputs"]] == [sha["changed\n"]]
        row = Store.open(real.settings().database_url)
        try:
            task = row.get(tid)
        finally:
            row.close()
        expected = json.loads(
            rerun_task(task, RerunRequest())[0].resources.backend_parameters["inputs_sha256"]  # type: ignore[union-attr,index]
        )
        assert expected["/work/data.txt"] == sha["original\n"]


def test_threads_of_openmp_and_blas_follow_the_tasks_cores_unless_it_sets_them(
    real: Server,
) -> None:
    show = 'echo "$OMP_NUM_THREADS $OPENBLAS_NUM_THREADS $MKL_NUM_THREADS $NUMEXPR_NUM_THREADS"'
    with real.run(local) as api:
        two = create(api, "sh", "-c", show, resources={"cpu_cores": 2})
        own = {"image": "i", "command": ["sh", "-c", show], "env": {"OMP_NUM_THREADS": "7"}}
        mine = api.post("/ga4gh/tes/v1/tasks", json={"executors": [own]}).json()["id"]
        for tid in (two, mine):
            assert wait(api, tid) == "COMPLETE", get(api, tid)["logs"]
        assert get(api, two)["logs"][0]["logs"][0]["stdout"] == "2 2 2 2\n"
        assert get(api, mine)["logs"][0]["logs"][0]["stdout"] == "7 1 1 1\n"
