"""The compute plug point: what the engine asks of a backend, and of one running attempt.

The engine keeps the queue, the task records and the state machine; a backend
only says whether a task can ever run (``check``), what it costs the
scheduler (``request``, ``free``) and starts attempts (``start``).  Everything
a backend needs to run in the background (a reconcile loop) lives between
``open`` and ``close``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from toolship.compute.devices import GpuPool
from toolship.models import TaskLog
from toolship.options import TaskOptions
from toolship.records import Job, Reporter, RuntimeRecord, WorkerJob
from toolship.states import TaskState
from toolship.storage.base import Progress

__all__ = ["Attempt", "Backend", "Capacity", "RemoteAttempt", "Request"]


@dataclass(frozen=True, slots=True)
class Request:
    task_id: str
    cpus: int
    memory_gb: float
    gpus: int = 0
    priority: int = 0
    # The batch this request belongs to, for its max-parallel throttle (None: no batch).
    group: str | None = None
    # Who it runs for (quotas, fair share): its owner and the owner's group.
    owner: str | None = None
    owner_group: str | None = None

    @classmethod
    def on_this_machine(cls, task_id: str, options: TaskOptions) -> Request:
        """What a task holds of one machine's capacity: every rank's share of it."""
        return cls(
            task_id=task_id,
            cpus=options.cpus * options.nodes,
            memory_gb=options.memory_gb * options.nodes,
            gpus=options.gpus * options.nodes,
            priority=options.priority,
        )


@dataclass(slots=True)
class Capacity:
    cpus: float
    memory_gb: float
    gpus: int = 0
    # Which devices: with an inventory, taking a request's GPUs picks them (by task id).
    devices: GpuPool | None = None

    def fits(self, r: Request) -> bool:
        return (
            r.cpus <= self.cpus
            and r.memory_gb <= self.memory_gb + 1e-9
            and r.gpus <= self.gpus
            and (not r.gpus or self.devices is None or self.devices.fits(r.gpus))
        )

    def take(self, r: Request) -> None:
        self.cpus -= r.cpus
        self.memory_gb -= r.memory_gb
        self.gpus -= r.gpus
        if r.gpus and self.devices is not None:
            self.devices.take(r.task_id, r.gpus)

    def give(self, r: Request) -> None:
        self.cpus += r.cpus
        self.memory_gb += r.memory_gb
        self.gpus += r.gpus
        if r.gpus and self.devices is not None:
            self.devices.give(r.task_id)

    def scratch(self) -> Capacity:
        """A copy to plan with: taking from it changes nothing here."""
        devices = self.devices.copy() if self.devices is not None else None
        return Capacity(self.cpus, self.memory_gb, self.gpus, devices)


class Attempt(Protocol):
    """One attempt of one task, wherever it runs."""

    cancelled: asyncio.Event  # set once a cancel was asked for

    async def run(self) -> TaskState:
        """Drive the attempt to its final state (resuming it when the job says so)."""
        ...

    def cancel(self, reason: str | None = None) -> None:
        """Ask the attempt to stop; ``run`` then ends CANCELED (with ``reason`` logged)."""
        ...

    def staged(self) -> Progress | None:
        """Files and bytes staged so far, while this process stages them (else None)."""
        ...


class RemoteAttempt(Attempt, Protocol):
    """An attempt whose worker runs elsewhere and reports over HTTP."""

    @property
    def number(self) -> int:
        """Which attempt of its task this is (1, 2, …): a worker of another is stale."""
        ...

    def worker_job(self) -> WorkerJob:
        """What the remote worker needs to run the attempt (see worker/remote.py)."""
        ...

    async def update(
        self, state: TaskState | None, attempt: TaskLog, runtime: RuntimeRecord
    ) -> bool:
        """A report from the remote worker; False tells it to stop."""
        ...


class Backend(Protocol):
    name: str
    free: Capacity  # what the scheduler may still hand out
    # Signs the per-task tokens of remote workers (toolship.secrets.worker_token); empty
    # for a backend whose workers run in this process (no worker may call in).
    worker_secret: bytes
    # Whether an attempt lives on the host of the server that started it (the local
    # backend's containers): a dead replica's attempt then cannot move to another host.
    # False: it lives in a scheduler any replica reaches (Slurm), and moves with adoption.
    host_bound: bool

    def check(self, options: TaskOptions) -> None:
        """Raise ResourcesUnavailable if this backend can never run such a task."""
        ...

    def request(self, task_id: str, options: TaskOptions) -> Request: ...

    def start(self, job: Job, reporter: Reporter) -> Attempt:
        """Start (or, for a job with a runtime record, resume) an attempt."""
        ...

    def in_flight(self, runtime: RuntimeRecord) -> bool:
        """Was an attempt with this runtime record handed to the backend already?"""
        ...

    def remote_attempt(self, task_id: str) -> RemoteAttempt | None:
        """The task's attempt in flight whose worker reports over HTTP, if any."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def adopting(self) -> None:
        """Another replica's attempts are about to resume here: find what their records
        may not name yet (Slurm: jobs submitted just before that replica died)."""
        ...
