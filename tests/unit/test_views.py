from __future__ import annotations

from toolship.api.views import render
from toolship.db import TaskRow, TaskSummary
from toolship.models import Task, TaskLog, View
from toolship.states import TaskState

ROW = TaskRow(
    seq=1,
    id="t1",
    state=TaskState.COMPLETE,
    name="n",
    creation_time="2026-01-01T00:00:00Z",
    priority=0,
    cpus=1,
    memory_gb=0,
    gpus=0,
    spec={
        "name": "n",
        "executors": [{"image": "i", "command": ["c"]}],
        "inputs": [{"path": "/in", "content": "secret-ish", "type": "FILE"}],
    },
    logs=[
        TaskLog.model_validate(
            {
                "logs": [{"exit_code": 0, "stdout": "out", "stderr": "err"}],
                "outputs": [],
                "system_logs": ["x"],
            }
        )
    ],
)


def test_minimal_is_id_and_state_only() -> None:
    assert render(ROW, View.MINIMAL) == {"id": "t1", "state": "COMPLETE"}
    assert render(TaskSummary("t1", TaskState.QUEUED), View.FULL) == {"id": "t1", "state": "QUEUED"}


def test_basic_drops_logs_content_and_system_logs() -> None:
    basic = render(ROW, View.BASIC)
    assert "content" not in basic["inputs"][0]
    assert "stdout" not in basic["logs"][0]["logs"][0]
    assert "system_logs" not in basic["logs"][0]
    # the stored row is untouched
    assert ROW.logs[0].logs[0].stdout == "out"


def test_full_is_complete_and_spec_shaped() -> None:
    full = render(ROW, View.FULL)
    assert full["logs"][0]["logs"][0]["stderr"] == "err"
    assert full["inputs"][0]["content"] == "secret-ish"
    Task.model_validate(full)  # only spec fields
