"""What the API refuses before anything runs: each message names the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from toolship.models import Task


def task(**extra: Any) -> dict[str, Any]:
    return {"executors": [{"image": "img", "command": ["true"]}], **extra}


def refused(doc: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        Task.model_validate(doc)
    return str(info.value)


def test_minimal_task_is_accepted() -> None:
    t = Task.model_validate(task())
    assert t.executors[0].command == ["true"]


def test_unknown_fields_are_refused() -> None:
    assert "extra" in refused(task(colour="blue"))
    assert "extra" in refused({"executors": [{"image": "i", "command": ["x"], "cmd": "x"}]})


def test_relative_input_path() -> None:
    assert "must be an absolute path" in refused(
        task(inputs=[{"path": "data/in.txt", "url": "file:///tmp/x"}])
    )


def test_input_path_escaping_with_dotdot() -> None:
    assert "must not contain '..'" in refused(
        task(inputs=[{"path": "/work/../etc/passwd", "url": "file:///tmp/x"}])
    )


def test_input_needs_url_or_content() -> None:
    assert "give either url or content" in refused(task(inputs=[{"path": "/in"}]))


def test_inputs_may_not_use_wildcards_but_outputs_may() -> None:
    assert "wildcards" in refused(task(inputs=[{"path": "/in/*.txt", "url": "file:///tmp/"}]))
    t = Task.model_validate(
        task(outputs=[{"path": "/out/*.txt", "url": "file:///tmp/o", "path_prefix": "/out"}])
    )
    assert t.outputs is not None and t.outputs[0].path == "/out/*.txt"


def test_path_prefix_must_prefix_the_path() -> None:
    assert "is not a prefix" in refused(
        task(outputs=[{"path": "/out/*.txt", "url": "file:///tmp/o", "path_prefix": "/elsewhere"}])
    )


def test_system_paths_are_not_mounted() -> None:
    assert "/proc" in refused(task(volumes=["/proc/self"]))
    assert "not '/'" in refused(task(volumes=["/"]))


def test_executor_needs_image_and_command() -> None:
    assert "command" in refused({"executors": [{"image": "img", "command": []}]})
    assert "image" in refused({"executors": [{"command": ["true"]}]})
    assert "executors" in refused({"executors": []})


def test_resources_must_be_positive() -> None:
    assert "cpu_cores" in refused(task(resources={"cpu_cores": 0}))
    assert "ram_gb" in refused(task(resources={"ram_gb": -1}))


def test_big_content_is_refused_with_advice() -> None:
    assert "put the data in a file" in refused(
        task(inputs=[{"path": "/in", "content": "x" * (1024 * 1024 + 1)}])
    )
