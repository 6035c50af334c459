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
    task: dict[str, Any] = {"id": row.id, "state": row.state.value}
    task.update(copy.deepcopy(row.spec) if view is View.BASIC else row.spec)
    task["creation_time"] = row.creation_time
    task["logs"] = [attempt.model_dump(mode="json", exclude_none=True) for attempt in row.logs]
    if view is View.BASIC:
        for inp in task.get("inputs", []):
            inp.pop("content", None)
        for attempt in task["logs"]:
            attempt.pop("system_logs", None)
            for ex in attempt.get("logs", []):
                ex.pop("stdout", None)
                ex.pop("stderr", None)
    return task
