from __future__ import annotations

import pytest

from toolship.states import (
    FINAL_STATES,
    TRANSITIONS,
    IllegalTransition,
    TaskState,
    allowed_sources,
    check_transition,
)

S = TaskState


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(TaskState)


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_final_states_have_no_way_out(final: TaskState) -> None:
    for target in TaskState:
        with pytest.raises(IllegalTransition):
            check_transition(final, target)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (S.QUEUED, S.INITIALIZING),
        (S.INITIALIZING, S.RUNNING),
        (S.RUNNING, S.COMPLETE),
        (S.RUNNING, S.EXECUTOR_ERROR),
        (S.RUNNING, S.SYSTEM_ERROR),
        (S.QUEUED, S.CANCELED),
        (S.RUNNING, S.CANCELING),
        (S.CANCELING, S.CANCELED),
    ],
)
def test_the_tes_path_is_allowed(src: TaskState, dst: TaskState) -> None:
    check_transition(src, dst)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (S.QUEUED, S.RUNNING),  # must initialise first
        (S.QUEUED, S.COMPLETE),
        (S.CANCELING, S.COMPLETE),  # a cancel request is not overtaken by success
        (S.CANCELING, S.RUNNING),
        (S.INITIALIZING, S.INITIALIZING),
    ],
)
def test_shortcuts_are_refused(src: TaskState, dst: TaskState) -> None:
    with pytest.raises(IllegalTransition, match=f"from {src} to {dst}"):
        check_transition(src, dst)


def test_allowed_sources_is_the_inverse_of_the_table() -> None:
    for target in TaskState:
        for src in TaskState:
            assert (src in allowed_sources(target)) == (target in TRANSITIONS[src])
