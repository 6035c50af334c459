"""The shared HPC helper: retries when the controller is busy, one bulk poll per tick."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from toolship.compute.hpc import CommandFailed, CommandRunner, JobStatus, Phase, Poller
from toolship.compute.slurm import SlurmAttempt
from toolship.compute.slurm_format import TRANSIENT, parse_unfinished
from toolship.config import Settings
from toolship.models import Resources, Task, TaskLog
from toolship.options import OptionDefaults, read_options
from toolship.records import Job, RuntimeRecord, SlurmRecord, WorkerJob
from toolship.states import TaskState


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


class FakeClock:
    """The poller's clock and sleep: time moves only when the poller sleeps.

    Once it reaches ``until`` the next sleep never ends, and ``stopped`` is set so
    the test can stop the poller: nothing depends on how fast this machine is.
    """

    def __init__(self, until: float) -> None:
        self.now = 0.0
        self.until = until
        self.slept: list[float] = []
        self.stopped = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.now >= self.until:
            self.stopped.set()
            await asyncio.Event().wait()
        await asyncio.sleep(0)


def run_poller(
    clock: FakeClock,
    query: Callable[[], Awaitable[Mapping[str, JobStatus]]],
    *,
    deliver: Callable[[Mapping[str, JobStatus]], None] = lambda s: None,
    active: Callable[[], bool] = lambda: True,
    started: Callable[[Poller], None] = lambda p: None,
) -> Poller:
    async def main() -> Poller:
        poller = Poller(
            interval=1.0, query=query, deliver=deliver, active=active, clock=clock,
            sleep=clock.sleep,
        )  # fmt: skip
        started(poller)
        poller.start()
        await asyncio.wait_for(clock.stopped.wait(), 10)
        await poller.stop()
        return poller

    return asyncio.run(main())


def test_the_poller_asks_once_per_tick_whatever_the_job_count() -> None:
    jobs = {str(i): JobStatus(str(i), "RUNNING", Phase.RUNNING) for i in range(5000)}
    clock = FakeClock(until=10.5)
    asked: list[float] = []
    seen: list[int] = []

    async def query() -> Mapping[str, JobStatus]:
        asked.append(clock.now)
        return jobs

    poller = run_poller(clock, query, deliver=lambda s: seen.append(len(s)))
    assert asked == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert poller.calls == 10 and seen == [5000] * 10


def test_no_jobs_followed_no_call() -> None:
    async def query() -> Mapping[str, JobStatus]:
        raise AssertionError("asked with no job to follow")

    clock = FakeClock(until=5.5)
    poller = run_poller(clock, query, active=lambda: False)
    assert poller.calls == 0 and clock.slept == [1.0] * 6


def test_a_failing_query_backs_off_doubling_up_to_a_minute_and_a_success_resets_it() -> None:
    clock = FakeClock(until=250.5)
    asked: list[float] = []

    async def query() -> Mapping[str, JobStatus]:
        asked.append(clock.now)
        if len(asked) <= 8:
            raise CommandFailed("squeue: error: Socket timed out")
        return {}

    run_poller(clock, query)
    # waits 2, 4, 8, 16, 32, 60, 60, 60 after the failures, then one interval again
    assert asked == [1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 123.0, 183.0, 243.0, 244.0, 245.0,
                     246.0, 247.0, 248.0, 249.0, 250.0]  # fmt: skip


def test_a_poke_polls_one_interval_after_the_last_call_not_after_the_back_off() -> None:
    clock = FakeClock(until=17.5)
    asked: list[float] = []
    pokes: list[Poller] = []

    async def query() -> Mapping[str, JobStatus]:
        asked.append(clock.now)
        if len(asked) == 4:
            pokes[0].poke()  # as a cancel does, while the back-off would wait 16 s
        if len(asked) <= 4:
            raise CommandFailed("squeue: error: Socket timed out")
        return {}

    run_poller(clock, query, started=pokes.append)
    assert asked == [1.0, 3.0, 7.0, 15.0, 16.0, 17.0]


class Recorder:
    def __init__(self) -> None:
        self.updates: list[tuple[TaskState | None, list[str]]] = []  # the system logs

    async def update(
        self,
        state: TaskState | None,
        attempt: TaskLog,
        runtime: RuntimeRecord,
        *,
        wait: bool = True,
    ) -> bool:
        self.updates.append((state, list(attempt.system_logs or [])))
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


def attempt(job_id: str = "7", *, started: bool = True) -> tuple[SlurmAttempt, Recorder]:
    """An attempt whose job is ``job_id``; ``started``: its worker has reported a step."""
    job = Job(
        task_id="t1",
        task=Task.model_validate({"executors": [{"image": "x", "command": ["true"]}]}),
        options=read_options(None, OptionDefaults(runtime="podman", cpus=1, memory_gb=0)),
        runtime=RuntimeRecord(slurm=SlurmRecord(job_id=job_id), phase="run" if started else None),
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
    assert "node(s) node2 failed (NODE_FAIL, reason NodeDown)" in log[-1]


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
    assert "without its worker reporting" in rec.updates[-1][1][-1]


def test_a_job_that_ran_nothing_is_submitted_again_twice_at_most() -> None:
    """Slurm lost the batch script ("Purging vestigial job script"): the worker never ran."""

    async def main() -> tuple[SlurmAttempt, Recorder, Backend]:
        a, rec = attempt(started=False)
        backend: Backend = a.backend  # type: ignore[assignment]
        for now in (0.0, 10.0, 20.0, 30.0):
            job = a.slurm.job_id or ""
            a.observe(JobStatus(job, "FAILED", Phase.ENDED, "NonZeroExitCode", "node2"), now)
            a.observe(JobStatus(job, "FAILED", Phase.ENDED, "NonZeroExitCode", "node2"), now + 5)
            for _ in range(10):  # the resubmission runs on the loop
                await asyncio.sleep(0)
        await asyncio.wait_for(a.done.wait(), 1)
        return a, rec, backend

    a, rec, backend = asyncio.run(main())
    assert backend.submitted == 2  # MAX_RESUBMITS, then the attempt ends
    assert a.final is TaskState.SYSTEM_ERROR
    logs = rec.updates[-1][1]
    again = [
        line for line in logs if "nothing of it ran, so it was submitted again as job 99" in line
    ]
    assert len(again) == 2 and "before its worker started" in again[0], logs
    assert "without its worker reporting an end" in logs[-1]


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
    assert "vanished" in rec.updates[-1][1][-1]


def test_after_a_cancel_a_failing_end_reads_canceled_and_late_reports_are_refused() -> None:
    async def main() -> tuple[SlurmAttempt, Recorder, bool]:
        a, rec = attempt(job_id="")
        a.slurm.job_id = None
        a.cancelled.set()  # as if cancelled before the job ran
        await a.update(TaskState.EXECUTOR_ERROR, TaskLog(), RuntimeRecord())
        late = await a.update(TaskState.RUNNING, TaskLog(), RuntimeRecord())
        return a, rec, late

    a, rec, late = asyncio.run(main())
    assert rec.updates[-1][0] is TaskState.CANCELED and a.final is TaskState.CANCELED
    assert late is False


def test_the_remote_workers_job_travels_as_json_and_gives_the_same_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)  # a server that does not run as root
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
    wire = json.dumps(attempt.worker_job().model_dump(mode="json", exclude_none=True))
    doc = WorkerJob.model_validate_json(wire)
    again = doc.job()
    assert again.options == options and again.credentials == {"s3_access_key_id": "k"}
    assert doc.attempt is None  # the worker starts the attempt afresh
    # A worker that runs as root on the node runs the task as local.task_user even so.
    assert doc.env.task_user == (65534, 65534) and doc.env.output_owner is None


def test_jobs_submitted_but_not_recorded_are_found_by_their_comment() -> None:
    text = "41|toolship:1m80abc:1\n42|toolship:1m80abc:2\n43|someone else's\n44|\n45|toolship:x:y\n"
    assert parse_unfinished(text) == {("1m80abc", 1): "41", ("1m80abc", 2): "42"}


def test_after_a_restart_an_attempt_takes_its_unrecorded_job_instead_of_submitting() -> None:
    async def main() -> tuple[SlurmAttempt, Recorder, Backend]:
        a, rec = attempt()
        a.slurm.job_id = None
        backend: Backend = a.backend  # type: ignore[assignment]
        backend.unrecorded[("t1", 1)] = "41"
        run = asyncio.create_task(a.run())
        await asyncio.sleep(0.01)
        await a.update(TaskState.COMPLETE, TaskLog(), RuntimeRecord())
        await asyncio.wait_for(run, 1)
        return a, rec, backend

    a, rec, backend = asyncio.run(main())
    assert backend.submitted == 0 and a.slurm.job_id == "41"
    assert "found Slurm job 41" in rec.updates[0][1][-1]
