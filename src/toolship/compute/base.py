"""The compute plug point: what the engine asks of a backend, and of one running attempt.

The engine keeps the queue, the task records and the state machine; a backend
only says whether a task can ever run (``check``), what it costs the
scheduler (``request``, ``free``) and starts attempts (``start``).  Everything
a backend needs to run in the background (a reconcile loop) lives between
``open`` and ``close``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from toolship.engine.options import TaskOptions
from toolship.engine.scheduler import Capacity, Request
from toolship.states import TaskState
from toolship.worker.worker import Job, Reporter

__all__ = ["Attempt", "Backend", "RemoteAttempt"]


class Attempt(Protocol):
    """One attempt of one task, wherever it runs."""

    cancelled: asyncio.Event  # set once a cancel was asked for

    async def run(self) -> TaskState:
        """Drive the attempt to its final state (resuming it when the job says so)."""
        ...

    def cancel(self, reason: str | None = None) -> None:
        """Ask the attempt to stop; ``run`` then ends CANCELED (with ``reason`` logged)."""
        ...


class RemoteAttempt(Attempt, Protocol):
    """An attempt whose worker runs elsewhere and reports over HTTP."""

    def worker_job(self) -> dict[str, Any]:
        """What the remote worker needs to run the attempt (see worker/remote.py)."""
        ...

    async def update(
        self, state: TaskState | None, attempt: dict[str, Any], runtime: dict[str, Any]
    ) -> bool:
        """A report from the remote worker; False tells it to stop."""
        ...


class Backend(Protocol):
    name: str
    free: Capacity  # what the scheduler may still hand out

    def check(self, options: TaskOptions) -> None:
        """Raise ResourcesUnavailable if this backend can never run such a task."""
        ...

    def request(self, task_id: str, options: TaskOptions) -> Request: ...

    def start(self, job: Job, reporter: Reporter) -> Attempt:
        """Start (or, for a job with a runtime record, resume) an attempt."""
        ...

    def in_flight(self, runtime: dict[str, Any]) -> bool:
        """Was an attempt with this runtime record handed to the backend already?"""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...
