"""TES views of a stored task — pure dictionary shaping, strictly spec fields."""

from __future__ import annotations

import copy
from typing import Any

from toolship.db import TaskRow, TaskSummary
from toolship.models import View

__all__ = ["render", "resolved_resources"]


def render(row: TaskRow | TaskSummary, view: View) -> dict[str, Any]:
    if view is View.MINIMAL or isinstance(row, TaskSummary):
        return {"id": row.id, "state": row.state.value}
    basic = view is View.BASIC
    task = {
        "id": row.id,
        "state": row.state.value,
        **(copy.deepcopy(row.spec) if basic else row.spec),
        "creation_time": row.creation_time,
        "logs": [a.model_dump(mode="json", exclude_none=True) for a in row.logs],
    }
    if basic:  # without what may be large: inputs' content, executors' output, system logs
        for inp in task.get("inputs", []):
            inp.pop("content", None)
        for attempt in task["logs"]:
            attempt.pop("system_logs", None)
            for ex in attempt.get("logs", []):
                ex.pop("stdout", None)
                ex.pop("stderr", None)
    return task


def resolved_resources(row: TaskRow) -> dict[str, Any]:
    """The task's resources as toolship runs them, for toolship's own routes only.

    What the client sent, plus what the server decided for what it left out: the
    cores, the memory limit (when the memory is limited) and the runtime.  Sent in
    a new task, they run it again exactly.  Never part of a TES document.
    """
    sent = row.spec.get("resources") or {}
    resources: dict[str, Any] = {**sent, "cpu_cores": row.cpus}
    pinned = row.resolved
    if pinned is None:  # no decision recorded (see TaskRow.resolved): what the task says
        return resources
    if pinned.memory_limited:
        resources["ram_gb"] = row.memory_gb
    resources["backend_parameters"] = {
        **(sent.get("backend_parameters") or {}),
        "runtime": pinned.runtime,
    }
    return resources
