"""The TES task state machine, written once.

Every state change in toolship goes through :func:`check_transition` (in
Python) or :func:`allowed_sources` (in the conditional SQL update that applies
it), so no code path can move a task along an edge this table does not have.
"""

from __future__ import annotations

from enum import StrEnum

from toolship.errors import InvalidRequest

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "IllegalTransition",
    "TaskState",
    "allowed_sources",
    "check_transition",
    "is_final",
]


class TaskState(StrEnum):
    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    EXECUTOR_ERROR = "EXECUTOR_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    CANCELED = "CANCELED"
    PREEMPTED = "PREEMPTED"
    CANCELING = "CANCELING"


S = TaskState

FINAL_STATES: frozenset[TaskState] = frozenset(
    {S.COMPLETE, S.EXECUTOR_ERROR, S.SYSTEM_ERROR, S.CANCELED, S.PREEMPTED}
)

# Not final and not paused: queued, staging or running (what "still going" means).
ACTIVE_STATES: frozenset[TaskState] = frozenset({S.QUEUED, S.INITIALIZING, S.RUNNING})

_ENDINGS = {S.COMPLETE, S.EXECUTOR_ERROR, S.SYSTEM_ERROR}

# from-state -> the states it may move to.  Final states have no way out.
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    S.UNKNOWN: frozenset({S.QUEUED}),
    S.QUEUED: frozenset({S.INITIALIZING, S.CANCELING, S.CANCELED, S.SYSTEM_ERROR}),
    S.INITIALIZING: frozenset(
        {S.RUNNING, S.QUEUED, S.CANCELING, S.CANCELED, S.PREEMPTED, *_ENDINGS}
    ),
    S.RUNNING: frozenset({S.PAUSED, S.QUEUED, S.CANCELING, S.CANCELED, S.PREEMPTED, *_ENDINGS}),
    S.PAUSED: frozenset({S.RUNNING, S.CANCELING, S.CANCELED, S.SYSTEM_ERROR}),
    S.CANCELING: frozenset({S.CANCELED}),
    **{final: frozenset() for final in FINAL_STATES},
}


class IllegalTransition(InvalidRequest):
    """Raised when code asks for an edge the TES state machine does not have."""


def is_final(state: TaskState) -> bool:
    return state in FINAL_STATES


def check_transition(current: TaskState, new: TaskState) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"a task cannot go from {current} to {new}")


def allowed_sources(new: TaskState) -> frozenset[TaskState]:
    """The states from which ``new`` may be entered (for conditional updates)."""
    return frozenset(src for src, targets in TRANSITIONS.items() if new in targets)
