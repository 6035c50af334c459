"""Named points of an attempt where a test can freeze the server, to kill -9 it there.

Test-only (tests/resilience): ``TOOLSHIP_TEST_PAUSE_AT=POINT[@NAME]:MARKER`` makes the
first attempt (of a task named NAME, if given) that reaches POINT write its task id to
the file MARKER and wait there until the file is removed (the rest of the server goes
on), so the test kills the process, or breaks something the next step needs, at a known
step of a task's life instead of at a moment it hopes for.  The variable is read once, when this
module loads; unset (always, outside those tests) :func:`pause` returns at once.

The points, in the order an attempt passes them:

- ``staged``: the inputs are in place and RUNNING is reported; no executor started yet
- ``started``: the first executor's container runs and its launch is recorded
- ``exited``: an executor's process ended; its exit is not recorded yet
- ``uploaded``: the outputs are delivered; the final state is not written yet
- ``final``: the final state is about to be reported
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from toolship.records import Job

__all__ = ["POINTS", "VARIABLE", "pause"]

VARIABLE = "TOOLSHIP_TEST_PAUSE_AT"
POINTS = ("staged", "started", "exited", "uploaded", "final")


def _read(value: str) -> tuple[str, str, Path] | None:
    if not value:
        return None
    where, sep, marker = value.partition(":")
    point, _, name = where.partition("@")
    if point not in POINTS or not sep or not marker:
        raise ValueError(
            f"{VARIABLE}={value!r}: give POINT[@TASK_NAME]:MARKER_FILE, POINT one of "
            f"{', '.join(POINTS)} (a test-only setting: unset it to run normally)"
        )
    return point, name, Path(marker)


_PAUSE = _read(os.environ.get(VARIABLE, ""))
_paused: list[str] = []  # the one attempt that stopped


async def pause(point: str, job: Job) -> None:
    """Wait here while MARKER exists if the test asked for ``point`` (see the module)."""
    if _PAUSE is None or _PAUSE[0] != point or _paused:
        return
    if _PAUSE[1] and job.task.name != _PAUSE[1]:
        return
    _paused.append(job.task_id)
    marker = _PAUSE[2]
    partial = marker.with_name(marker.name + ".part")
    partial.write_text(job.task_id)
    partial.rename(marker)  # the test never reads a half-written id
    while marker.exists():
        await asyncio.sleep(0.05)
