"""What the engine core hears and what it answers: small frozen records, no behaviour.

Events say what happened (a task stored, an attempt ended, a cancel asked for,
the time now); instructions say what the shell must do (start an attempt,
write a state, arm a timer).  See :mod:`toolship.engine.core`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from toolship.compute.base import Request
from toolship.models import TaskLog
from toolship.options import RetryPolicy
from toolship.states import TaskState

__all__ = [
    "Alarm",
    "AttemptEnded",
    "AttemptExited",
    "AttemptResumed",
    "BatchAdded",
    "Cancel",
    "CancelRequested",
    "Dispatch",
    "Event",
    "ExpireBatch",
    "Fail",
    "Instruction",
    "Retry",
    "Start",
    "StartFailed",
    "Stop",
    "TaskCreated",
    "Tick",
]

# --- events: what happened ------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchAdded:
    """A batch exists: its members share a max-parallel throttle and a deadline."""

    batch_id: str
    max_parallel: int | None = None
    deadline: float | None = None  # seconds since the epoch
    timeout: str = "its timeout"  # as the batch asked for it, for the cancel reason


@dataclass(frozen=True, slots=True)
class TaskCreated:
    """A QUEUED task (new, or found again on restart) that has not started."""

    request: Request
    after: tuple[str, ...] = ()
    # The stored state, now, of each parent that may have ended (absent: a batch member
    # not placed yet, or one still live in the core).  A stale non-final state for a
    # parent that has ended since would hold the task for ever.
    parents: Mapping[str, TaskState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AttemptResumed:
    """An attempt that was in flight before a restart runs again: it holds its slot."""

    request: Request
    cancel_requested: bool = False


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Capacity may be free: start what fits.  ``now``: the time (fair share's clock)."""

    now: float | None = None


@dataclass(frozen=True, slots=True)
class StartFailed:
    """A ``Start`` could not be carried out; the task stays QUEUED in the store."""

    task_id: str


@dataclass(frozen=True, slots=True)
class AttemptEnded:
    """An attempt reports a final state: should it be tried again instead?"""

    task_id: str
    state: TaskState
    attempt_number: int
    policy: RetryPolicy
    attempt: TaskLog  # what the attempt logged (its executors' exit codes)


@dataclass(frozen=True, slots=True)
class AttemptExited:
    """An attempt is over; ``state`` is the task's state as stored now (QUEUED: a retry).

    ``now``: when (the cores it held are counted to its owner's usage up to then).
    """

    task_id: str
    state: TaskState
    now: float | None = None


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """Someone asked to cancel a task; ``state`` is its stored state."""

    task_id: str
    state: TaskState
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """The time now (seconds since the epoch): deadlines up to it are due."""

    now: float


Event = (
    BatchAdded
    | TaskCreated
    | AttemptResumed
    | Dispatch
    | StartFailed
    | AttemptEnded
    | AttemptExited
    | CancelRequested
    | Tick
)

# --- instructions: what the shell must do ---------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Start an attempt of this QUEUED task; its capacity is taken."""

    request: Request

    @property
    def task_id(self) -> str:
        return self.request.task_id


@dataclass(frozen=True, slots=True)
class Fail:
    """End this QUEUED task SYSTEM_ERROR without running it, with ``why`` in its log."""

    task_id: str
    why: str


@dataclass(frozen=True, slots=True)
class Cancel:
    """End this QUEUED task CANCELED (it has left the queue), ``reason`` in its log."""

    task_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """Ask this task's attempt to stop (and record that a cancel was asked for)."""

    task_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """Put the task back in QUEUED instead of the attempt's final state, ``why`` logged."""

    task_id: str
    why: str


@dataclass(frozen=True, slots=True)
class ExpireBatch:
    """The batch ran out of time: cancel its unfinished members with ``reason``."""

    batch_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Alarm:
    """Send a :class:`Tick` at or after ``at`` (seconds since the epoch)."""

    at: float


Instruction = Start | Fail | Cancel | Stop | Retry | ExpireBatch | Alarm
