"""A server stopped and started again on the same database loses nothing.

The app is stopped as on SIGTERM (its lifespan ends: the engine stops dispatching and
leaves attempts running) and a new app starts on the same home.  The fake backend's
executors outlive the server as containers do: one that was running ends when it
would have, on the shared clock, and is never started a second time.
"""

from __future__ import annotations

from typing import Any

from tests.api.conftest import BATCHES, Server, create, get, running, state_of, task, wait
from toolship.compute.fake import Run


def params(**values: str) -> dict[str, Any]:
    return {"resources": {"backend_parameters": values}}


def test_running_tasks_resume_and_queued_tasks_still_run(server: Server) -> None:
    with server.run(cpus=1) as api:
        first = create(api, "sleep", "30", name="first")
        second = create(api, "echo", "later", name="second")
        running(api, server.fake, first)
        started = get(api, first)["logs"][0]
        assert state_of(api, second) == "QUEUED"
    before = server.fake
    with server.run(cpus=1) as api:
        resumed = server.fake
        assert resumed is not before
        running(api, resumed, first)
        assert state_of(api, second) == "QUEUED"
        server.clock.advance(30)
        assert wait(api, first) == "COMPLETE"
        assert wait(api, second) == "COMPLETE"
        (attempt,) = get(api, first)["logs"]
        (executor,) = attempt["logs"]  # followed, not started again
        assert attempt["start_time"] == started["start_time"]
        assert executor["start_time"] == started["start_time"]
        assert get(api, second)["logs"][0]["logs"][0]["stdout"] == "later\n"
    (first_attempt,) = [a for a in resumed.attempts if a.job.task_id == first]
    assert first_attempt.job.attempt is not None  # handed the attempt to resume


def test_an_executor_that_ended_while_the_server_was_down_ends_its_task(
    server: Server,
) -> None:
    with server.run() as api:
        tid = create(api, "sleep", "30")
        running(api, server.fake, tid)
    server.clock.advance(60)  # it ended meanwhile
    with server.run() as api:
        assert wait(api, tid) == "COMPLETE"
        executor = get(api, tid)["logs"][0]["logs"][0]
        assert executor["exit_code"] == 0


def test_a_task_cancelled_after_the_restart_ends_canceled(server: Server) -> None:
    with server.run() as api:
        tid = create(api, "sleep", "600")
        running(api, server.fake, tid)
    with server.run() as api:
        running(api, server.fake, tid)
        api.post(f"/ga4gh/tes/v1/tasks/{tid}:cancel")
        assert wait(api, tid) == "CANCELED"


def test_throttles_and_held_children_survive_a_restart(server: Server) -> None:
    doc = {"template": task("sleep", "10"), "params": [{"i": i} for i in range(3)],
           "max_parallel": 1}  # fmt: skip
    with server.run() as api:
        r = api.post(BATCHES, json=doc)
        batch_id, ids = r.json()["id"], r.json()["task_ids"]
        child = create(api, "echo", "after all", **params(after=ids[-1]))
        running(api, server.fake, ids[0])
    with server.run() as api:
        fake = server.fake
        for tid in ids:
            running(api, fake, tid)
            assert [t for t in [*ids, child] if state_of(api, t) == "RUNNING"] == [tid]
            fake.clock.advance(10)
            assert wait(api, tid) == "COMPLETE"
        assert wait(api, child) == "COMPLETE"
        assert api.get(f"{BATCHES}/{batch_id}").json()["counts"] == {"COMPLETE": 3}


def test_a_retry_queued_before_the_restart_runs_as_the_next_attempt(server: Server) -> None:
    script = (Run(exit_code=75, stdout="one\n", seconds=5), Run(stdout="two\n"))
    with server.run(cpus=1) as api:
        server.fake.script("flaky", *script)
        tid = create(api, name="flaky", **params(retries="1", retry_on="exit:75"))
        running(api, server.fake, tid)
        blocker = create(api, "sleep", "10")  # queued first: it takes the freed core
        server.clock.advance(5)
        running(api, server.fake, blocker)
        assert state_of(api, tid) == "QUEUED"
        assert len(get(api, tid)["logs"]) == 1
    with server.run(cpus=1) as api:
        server.fake.script("flaky", *script)
        server.clock.advance(10)
        assert wait(api, blocker) == "COMPLETE"
        assert wait(api, tid) == "COMPLETE"
        logs = get(api, tid)["logs"]
        assert [a["logs"][0]["stdout"] for a in logs] == ["one\n", "two\n"]
        assert "retrying (attempt 2 of at most 2)" in " ".join(logs[0]["system_logs"])
