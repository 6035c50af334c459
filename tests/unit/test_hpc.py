"""The shared HPC helper: retries when the controller is busy, one bulk poll per tick."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from toolship.compute.hpc import CommandFailed, CommandRunner, JobStatus, Phase, Poller
from toolship.compute.slurm import SlurmAttempt
from toolship.compute.slurm_format import TRANSIENT, parse_unfinished
from toolship.config import Settings
from toolship.models import Resources, Task
from toolship.options import OptionDefaults, read_options
from toolship.records import Job
from toolship.states import TaskState
from toolship.worker.remote import read_job


class FakeRunner(CommandRunner):
    def __init__(self, answers: list[tuple[int, str, str]]) -> None:
        self.slept: list[float] = []

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        super().__init__(concurrency=2, attempts=4, transient=TRANSIENT, sleep=sleep)
        self.answers = answers
        self.calls = 0

    async def _exec(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls += 1
        return self.answers.pop(0)


def test_a_busy_controller_is_retried_with_back_off() -> None:
    runner = FakeRunner([
        (1, "", "sbatch: error: Batch job submission failed: Socket timed out on send/recv"),
        (1, "", "sbatch: error: Resource temporarily unavailable"),
        (0, "42\n", ""),
    ])  # fmt: skip
    assert asyncio.run(runner.run(["sbatch", "x"])) == "42\n"
    assert runner.slept == [0.5, 1.0]


def test_a_real_error_fails_at_once_with_slurms_words() -> None:
    runner = FakeRunner([(1, "", "sbatch: error: invalid partition specified: gpu")])
    with pytest.raises(CommandFailed, match="invalid partition specified: gpu"):
        asyncio.run(runner.run(["sbatch", "x"]))
    assert runner.calls == 1


def test_the_poller_asks_once_per_tick_whatever_the_job_count() -> None:
    jobs = {str(i): JobStatus(str(i), "RUNNING", Phase.RUNNING) for i in range(5000)}
    seen: list[int] = []

    async def query() -> Mapping[str, JobStatus]:
        return jobs

    async def main() -> Poller:
        poller = Poller(
            interval=0.05, query=query, deliver=lambda s: seen.append(len(s)), active=lambda: True
        )
        poller.start()
        await asyncio.sleep(0.53)
        await poller.stop()
        return poller

    poller = asyncio.run(main())
    assert 5 <= poller.calls <= 11
    assert seen and all(n == 5000 for n in seen)


class Recorder:
    def __init__(self) -> None:
        self.updates: list[tuple[TaskState | None, dict[str, Any]]] = []

    async def update(
        self,
        state: TaskState | None,
        attempt: dict[str, Any],
        runtime: dict[str, Any],
        *,
        wait: bool = True,
    ) -> bool:
        self.updates.append((state, attempt))
        return True


class Backend:
    work_dir = Path("/nonexistent")
    settings = Settings(home=Path("/nonexistent"))

    def __init__(self) -> None:
        self.attempts: dict[str, Any] = {}
        self.unrecorded: dict[tuple[str, int], str] = {}
        self.submitted = 0

    async def submit(self, attempt: SlurmAttempt) -> str:
        self.submitted += 1
        return "99"


def attempt(job_id: str = "7") -> tuple[SlurmAttempt, Recorder]:
    job = Job(
        task_id="t1",
        task=Task.model_validate({"executors": [{"image": "x", "command": ["true"]}]}),
        options=read_options(None, OptionDefaults(runtime="podman", cpus=1, memory_gb=0)),
        runtime={"slurm": {"job_id": job_id}},
    )
    rec = Recorder()
    return SlurmAttempt(Backend(), job, rec), rec  # type: ignore[arg-type]


def test_a_failed_node_ends_the_attempt_at_once_naming_the_node() -> None:
    async def main() -> tuple[SlurmAttempt, Recorder]:
        a, rec = attempt()
        a.observe(JobStatus("7", "RUNNING", Phase.RUNNING, "", "node2"), 0.0)
        a.observe(JobStatus("7", "NODE_FAIL", Phase.LOST, "NodeDown", "node2"), 1.0)
        await asyncio.wait_for(a.done.wait(), 1)
        return a, rec

    a, rec = asyncio.run(main())
    state, log = rec.updates[-1]
    assert state is TaskState.SYSTEM_ERROR and a.final is TaskState.SYSTEM_ERROR
    assert "node(s) node2 (NODE_FAIL, reason NodeDown)" in log["system_logs"][-1]


def test_an_ended_job_gets_a_grace_for_the_workers_last_report() -> None:
    async def main() -> tuple[SlurmAttempt, Recorder]:
        a, rec = attempt()
        a.observe(JobStatus("7", "COMPLETED", Phase.ENDED, "", "node1"), 0.0)
        await asyncio.sleep(0)
        assert not rec.updates  # still waiting for the worker
        a.observe(JobStatus("7", "COMPLETED", Phase.ENDED, "", "node1"), 10.0)
        await asyncio.wait_for(a.done.wait(), 1)
        return a, rec

    _, rec = asyncio.run(main())
    assert rec.updates[-1][0] is TaskState.SYSTEM_ERROR
    assert "without its worker reporting" in rec.updates[-1][1]["system_logs"][-1]


def test_a_job_that_vanishes_twice_ends_the_attempt() -> None:
    async def main() -> Recorder:
        a, rec = attempt()
        a.observe(None, 0.0)
        await asyncio.sleep(0)
        assert not rec.updates
        a.observe(None, 2.0)
        await asyncio.wait_for(a.done.wait(), 1)
        return rec

    rec = asyncio.run(main())
    assert "vanished" in rec.updates[-1][1]["system_logs"][-1]


def test_after_a_cancel_a_failing_end_reads_canceled_and_late_reports_are_refused() -> None:
    async def main() -> tuple[SlurmAttempt, Recorder, bool]:
        a, rec = attempt(job_id="")
        del a.slurm["job_id"]
        a.cancelled.set()  # as if cancelled before the job ran
        await a.update(TaskState.EXECUTOR_ERROR, {"logs": []}, {})
        late = await a.update(TaskState.RUNNING, {"logs": []}, {})
        return a, rec, late

    a, rec, late = asyncio.run(main())
    assert rec.updates[-1][0] is TaskState.CANCELED and a.final is TaskState.CANCELED
    assert late is False


def test_the_remote_workers_job_travels_as_json_and_gives_the_same_options() -> None:
    res = {"cpu_cores": 2, "ram_gb": 1.5,
           "backend_parameters": {"retries": "2", "retry_on": "oom", "nodes": "2",
                                  "timeout": "90s", "runtime": "podman"}}  # fmt: skip
    task = Task.model_validate(
        {"executors": [{"image": "x", "command": ["true"]}], "resources": res}
    )
    options = read_options(
        Resources.model_validate(res), OptionDefaults(runtime="podman", cpus=1, memory_gb=0.0)
    )
    job = Job(task_id="t1", task=task, options=options, credentials={"s3_access_key_id": "k"})
    attempt = SlurmAttempt(Backend(), job, Recorder())  # type: ignore[arg-type]
    doc = json.loads(json.dumps(attempt.worker_job()))
    again = read_job(doc)
    assert again.options == options and again.credentials == {"s3_access_key_id": "k"}
    assert doc["attempt"] is None  # the worker starts the attempt afresh


def test_jobs_submitted_but_not_recorded_are_found_by_their_comment() -> None:
    text = "41|toolship:1m80abc:1\n42|toolship:1m80abc:2\n43|someone else's\n44|\n45|toolship:x:y\n"
    assert parse_unfinished(text) == {("1m80abc", 1): "41", ("1m80abc", 2): "42"}


def test_after_a_restart_an_attempt_takes_its_unrecorded_job_instead_of_submitting() -> None:
    async def main() -> tuple[SlurmAttempt, Recorder, Backend]:
        a, rec = attempt()
        del a.slurm["job_id"]
        backend: Backend = a.backend  # type: ignore[assignment]
        backend.unrecorded[("t1", 1)] = "41"
        run = asyncio.create_task(a.run())
        await asyncio.sleep(0.01)
        await a.update(TaskState.COMPLETE, {"logs": []}, {})
        await asyncio.wait_for(run, 1)
        return a, rec, backend

    a, rec, backend = asyncio.run(main())
    assert backend.submitted == 0 and a.slurm["job_id"] == "41"
    assert "found Slurm job 41" in rec.updates[0][1]["system_logs"][-1]
