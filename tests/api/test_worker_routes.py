"""The remote workers' routes: a task's own token reads its job and reports, nothing else.

A backend whose workers run elsewhere (Slurm) says so through the backend protocol
(``worker_secret``, ``remote_attempt``); here a fake one holds a scripted attempt.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.api.conftest import Server
from toolship.compute import RemoteAttempt
from toolship.compute.fake import FakeBackend
from toolship.models import Task, TaskLog
from toolship.options import OptionDefaults
from toolship.records import ReportAnswer, RuntimeRecord, WorkerJob, WorkerReport, WorkerSettings
from toolship.secrets import worker_token
from toolship.states import TaskState
from toolship.storage.base import Progress
from toolship.storage.settings import StorageSettings

SECRET = b"w" * 32
JOB = "/api/v1/worker/tasks"


class RemoteFake(FakeBackend):
    worker_secret = SECRET

    def __init__(self) -> None:
        super().__init__()
        self.remote: dict[str, Stub] = {}

    def remote_attempt(self, task_id: str) -> RemoteAttempt | None:
        return self.remote.get(task_id)


class Stub:
    """A remote attempt that hands out one job and keeps the reports it is sent."""

    def __init__(self, task_id: str) -> None:
        self.cancelled = asyncio.Event()
        self.reports: list[tuple[TaskState | None, TaskLog, RuntimeRecord]] = []
        self.job = WorkerJob(
            task_id=task_id,
            task=Task.model_validate({"executors": [{"image": "i", "command": ["true"]}]}),
            defaults=OptionDefaults(runtime="podman", cpus=1, memory_gb=1.0),
            runtime=RuntimeRecord(warnings=["w"]),
            attempt_number=2,
            credentials={"s3_access_key_id": "k"},
            env=WorkerSettings(
                work_dir=Path("/shared/work"),
                log_tail_bytes=10,
                stop_grace_seconds=2,
                pids_limit=100,
                shared_dirs=[Path("/shared/data")],
                writable_shared_dirs=[Path("/shared/data/jobs")],
                transfers=4,
                transfer_attempts=3,
                task_user=(1000, 1000),
                own_files={Path("/srv/toolship.db"): "the database"},
            ),
            storage=StorageSettings(),
        )

    @property
    def number(self) -> int:
        return self.job.attempt_number

    async def run(self) -> TaskState:
        return TaskState.COMPLETE

    def cancel(self, reason: str | None = None) -> None:
        self.cancelled.set()

    def staged(self) -> Progress | None:
        return None

    def worker_job(self) -> WorkerJob:
        return self.job

    async def update(
        self, state: TaskState | None, attempt: TaskLog, runtime: RuntimeRecord
    ) -> bool:
        self.reports.append((state, attempt, runtime))
        return True


def bearer(task_id: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {worker_token(SECRET, task_id)}",
        "Content-Type": "application/json",  # as the worker sends its reports
    }


def test_a_worker_reads_its_job_and_reports_with_its_tasks_token(server: Server) -> None:
    backend = RemoteFake()
    with server.run(real=lambda _settings, _storage: backend) as api:
        assert api.get(f"{JOB}/t1", headers=bearer("t1")).status_code == 409  # no attempt yet
        backend.remote["t1"] = stub = Stub("t1")
        assert api.get(f"{JOB}/t1", headers=bearer("t2")).status_code == 401
        assert api.get(f"{JOB}/t1").status_code == 401  # the API's own token is not one

        r = api.get(f"{JOB}/t1", headers=bearer("t1"))
        assert r.status_code == 200, r.text
        assert WorkerJob.model_validate_json(r.content) == stub.job  # the same on both ends

        report = WorkerReport(
            state=TaskState.RUNNING,
            attempt=TaskLog(start_time="2026-01-01T00:00:00Z", system_logs=["w"]),
            runtime=RuntimeRecord(phase="run", executor=0, launching=0),
        )
        sent = report.model_dump_json(exclude_none=True)
        r = api.post(f"{JOB}/t1/report", content=sent, headers=bearer("t1"))
        assert ReportAnswer.model_validate_json(r.content) == ReportAnswer(ok=True, cancel=False)
        assert stub.reports == [(report.state, report.attempt, report.runtime)]

        stub.cancel()
        r = api.post(f"{JOB}/t1/report", content=sent, headers=bearer("t1"))
        assert ReportAnswer.model_validate_json(r.content) == ReportAnswer(ok=True, cancel=True)


def test_the_worker_of_an_attempt_that_is_over_is_told_to_stop(server: Server) -> None:
    """Slurm lost attempt 1's job (slurmctld restarted) and gave attempt 2's job the same
    id: attempt 1's worker, still running, must not be taken for attempt 2's."""
    backend = RemoteFake()
    with server.run(real=lambda _settings, _storage: backend) as api:
        backend.remote["t1"] = stub = Stub("t1")  # now running attempt 2
        r = api.get(f"{JOB}/t1?attempt=1", headers=bearer("t1"))
        assert r.status_code == 409, r.text
        assert "runs attempt 1 of task t1, which is over" in r.text
        assert "now runs attempt 2" in r.text
        assert api.get(f"{JOB}/t1?attempt=2", headers=bearer("t1")).status_code == 200

        stale = WorkerReport(
            state=TaskState.COMPLETE,
            attempt=TaskLog(start_time="2026-01-01T00:00:00Z"),
            runtime=RuntimeRecord(phase="done"),
            attempt_number=1,
        )
        r = api.post(f"{JOB}/t1/report", content=stale.model_dump_json(), headers=bearer("t1"))
        assert r.status_code == 409, r.text
        assert stub.reports == []  # attempt 2 never saw attempt 1's end
        current = stale.model_copy(update={"attempt_number": 2, "state": TaskState.RUNNING})
        r = api.post(f"{JOB}/t1/report", content=current.model_dump_json(), headers=bearer("t1"))
        assert r.status_code == 200, r.text
        assert [state for state, _, _ in stub.reports] == [TaskState.RUNNING]


def test_a_backend_without_remote_workers_lets_no_worker_in(server: Server) -> None:
    with server.run() as api:  # the fake backend: its attempts run in the server
        r = api.get(f"{JOB}/t1", headers=bearer("t1"))
        assert r.status_code == 401, r.text
