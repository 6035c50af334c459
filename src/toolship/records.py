"""The records that cross the layers: what the engine hands a backend, and how it hears back.

A :class:`Job` is everything one attempt needs (built by the engine, run by a
backend's worker, here or on a compute node); a :class:`Reporter` is how the
worker persists its progress: the attempt's TES :class:`~toolship.models.TaskLog`
and its :class:`RuntimeRecord`.  A remote worker fetches its job as a
:class:`WorkerJob`.  They live below the engine, the backends and the worker so
that each of them can name them without importing the others.

The runtime record is stored in the database (as JSON, keys as named here) and
read back when the server restarts: a record an older toolship wrote must load,
so every field has a default and a key this version no longer knows is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from toolship.models import Task, TaskLog
from toolship.options import OptionDefaults, TaskOptions, read_options
from toolship.states import TaskState
from toolship.storage.settings import StorageSettings

__all__ = [
    "Job",
    "Phase",
    "RankRecord",
    "ReportAnswer",
    "Reporter",
    "RuntimeRecord",
    "SlurmRecord",
    "WorkerJob",
    "WorkerReport",
    "WorkerSettings",
]

# Where an attempt stands: "staging" (inputs being staged: a restart stages again),
# "run" (executors from ``executor`` on), "outputs" (collecting them), "done".
Phase = Literal["staging", "run", "outputs", "done"]


class _Record(BaseModel):
    # Built on first use: a compute-node worker pays only for what it reads.
    model_config = ConfigDict(extra="ignore", defer_build=True)


class SlurmRecord(_Record):
    """The Slurm job of an attempt, as the server last saw it in ``squeue``."""

    job_id: str | None = None
    state: str | None = None
    nodes: str | None = None


class RankRecord(_Record):
    """How one rank of a multi-node task's executor ended, as its rank wrapper wrote it."""

    executor: int
    rank: int
    node: str | None = None  # the host it ran on (Slurm's node name)
    exit_code: int | None = None  # None: it left none (killed, or never started)


class RuntimeRecord(_Record):
    """Where an attempt stands, reported before each step so a restart can resume it.

    The worker records its intent before it acts (``launching`` before an
    executor starts, ``phase`` before staging), so a restarted server hands the
    same record back and the worker follows a still-running executor instead of
    starting it again.
    """

    phase: Phase | None = None  # None: nothing done yet
    attempt_dir: str | None = None  # the attempt's directory on the server (or shared) disk
    runtime: str | None = None  # the container runtime that runs the executors
    # Admission warnings, copied into the attempt's system logs when it starts.
    warnings: list[str] = Field(default_factory=list)
    # What staging mounted, [host, container, read-only]: a resumed attempt never stages again.
    mounts: list[tuple[str, str, bool]] | None = None
    staged_bytes: int | None = None  # what stage-in copied (/metrics counts it at the end)
    executor: int | None = None  # the next executor to run (or the one running)
    launching: int | None = None  # the executor about to start: a restart looks for it
    pid: int | None = None  # the running executor's wrapper process
    container: str | None = None
    exec_start: str | None = None  # when the running executor started (RFC 3339)
    deadline: float | None = None  # the executors' wall-clock limit, as a Unix time
    failed: bool = False  # an executor failed: outputs are collected leniently
    slurm: SlurmRecord | None = None  # the attempt's Slurm job (Slurm backend only)
    # The host indexes of the GPUs the local scheduler granted: a restart reclaims them.
    gpus: list[int] | None = None
    # Multi-node tasks: every rank of every executor that ended, in order (None: one node).
    ranks: list[RankRecord] | None = None


class Reporter(Protocol):
    async def update(
        self,
        state: TaskState | None,
        attempt: TaskLog,
        runtime: RuntimeRecord,
        *,
        wait: bool = True,
    ) -> bool:
        """Persist the attempt's log and runtime record, moving to ``state`` if given.

        Returns False when the state change is refused (the task was
        cancelled meanwhile); the worker then stops.  With ``wait=False`` the
        reporter may return before the report is durable (and True): a refusal
        then shows in the next waited report, which also makes this one durable.
        The records are serialised when written: the caller changes them only to
        make them newer.
        """
        ...


@dataclass
class Job:
    task_id: str
    task: Task
    options: TaskOptions
    attempt: TaskLog | None = None  # the TES TaskLog of this attempt, when resuming
    runtime: RuntimeRecord = field(default_factory=RuntimeRecord)
    attempt_number: int = 1
    # Per-task credentials for staging; never stored in the task record or logged.
    credentials: dict[str, str] = field(default_factory=dict)
    owner: str | None = None  # who it runs for (the Slurm backend: access.slurm_accounts)


class WorkerSettings(_Record):
    """The server's settings a remote worker runs its attempt with."""

    work_dir: Path
    log_tail_bytes: int
    stop_grace_seconds: int
    pids_limit: int
    shared_dirs: list[Path]
    writable_shared_dirs: list[Path] = Field(default_factory=list)  # resolved, in shared_dirs
    transfers: int  # files moved at once
    transfer_attempts: int
    # A worker running as root on the node runs tasks as this (uid, gid): local.task_user.
    task_user: tuple[int, int]
    task_subids: tuple[int, int] | None = None  # local.task_subids: the task's user namespace
    output_owner: tuple[int, int] | None = None
    own_files: dict[Path, str] = Field(default_factory=dict)  # the server's files, not inputs
    pull_from: list[str] = Field(default_factory=list)  # images.pull_from
    accounting: bool = False  # local.accounting: measure CPU and peak memory where possible


class WorkerJob(_Record):
    """What a remote worker fetches to run one attempt (``GET /api/v1/worker/tasks/{id}``).

    The worker on the compute node runs the same toolship version as the server,
    so both ends read and write this one model.
    """

    task_id: str
    task: Task
    # The worker reads its options from the task as the server did: these are what the
    # server decided for what the task leaves out (its record's ``resolved``).
    defaults: OptionDefaults
    attempt: TaskLog | None = None  # set when the attempt started before (a resume)
    runtime: RuntimeRecord = Field(default_factory=RuntimeRecord)
    attempt_number: int = 1
    credentials: dict[str, str] = Field(default_factory=dict)
    owner: str | None = None  # whose task (file:// roots naming {user} are its own)
    env: WorkerSettings
    storage: StorageSettings

    def job(self) -> Job:
        """The attempt to run, its options read from the task as the server read them."""
        return Job(
            task_id=self.task_id,
            task=self.task,
            options=read_options(self.task.resources, self.defaults),
            attempt=self.attempt,
            runtime=self.runtime,
            attempt_number=self.attempt_number,
            credentials=dict(self.credentials),
            owner=self.owner,
        )


class WorkerReport(_Record):
    """A remote worker's report (``POST /api/v1/worker/tasks/{id}/report``)."""

    state: TaskState | None = None
    attempt: TaskLog
    runtime: RuntimeRecord
    # Which attempt the worker runs (its batch script's --attempt); a worker of an
    # earlier attempt, still running on a node Slurm lost track of, is told to stop.
    attempt_number: int | None = None


class ReportAnswer(_Record):
    """The server's answer to a report: ``ok: false`` or ``cancel: true`` stop the worker."""

    ok: bool
    cancel: bool = False
