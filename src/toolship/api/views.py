"""TES views of a stored task — pure dictionary shaping, strictly spec fields."""

from __future__ import annotations

import copy
from typing import Any

from toolship.db import TaskRow, TaskSummary
from toolship.models import View

__all__ = ["render"]


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
