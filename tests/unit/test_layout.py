from __future__ import annotations

from pathlib import Path

from toolship.engine.validate import layout_problems as problems
from toolship.models import Task, distinct_inputs, static_dir
from toolship.worker.layout import plan_layout, writable_dirs


def t(**doc: object) -> Task:
    return Task.model_validate({"executors": [{"image": "i", "command": ["c"]}], **doc})


def test_static_dir() -> None:
    assert static_dir("/work/out/*.png") == "/work/out"
    assert static_dir("/work/*/x.txt") == "/work"
    assert static_dir("/plain/path") == "/plain/path"


def test_writable_dirs_are_outermost_only() -> None:
    task = t(
        executors=[{"image": "i", "command": ["c"], "workdir": "/work", "stdout": "/logs/o.txt"}],
        outputs=[
            {"path": "/work/out/*.png", "url": "file:///tmp/o/"},
            {"path": "/work/result.txt", "url": "file:///tmp/r"},
            {"path": "/results", "url": "file:///tmp/d", "type": "DIRECTORY"},
        ],
        volumes=["/scratch"],
    )
    assert writable_dirs(task) == ["/logs", "/results", "/scratch", "/work"]


def test_files_directly_under_root_are_refused() -> None:
    assert problems(t(outputs=[{"path": "/out.txt", "url": "file:///tmp/x"}]))


def test_nested_or_duplicate_inputs_are_refused() -> None:
    found = problems(
        t(
            inputs=[
                {"path": "/data", "url": "file:///tmp/d", "type": "DIRECTORY"},
                {"path": "/data/x", "url": "file:///tmp/x"},
            ]
        )
    )
    assert "nested" in found[0]


def test_an_identical_repeat_is_one_input_and_a_conflict_names_both_sources() -> None:
    same = {"path": "/in/a", "url": "file:///tmp/a", "name": "first"}
    task = t(inputs=[same, {**same, "name": "second"}, {"path": "/in/b", "content": "x"}])
    assert problems(task) == []
    assert [i.path for i in distinct_inputs(task.inputs)] == ["/in/a", "/in/b"]
    (found,) = problems(t(inputs=[same, {"path": "/in/a", "content": "x"}]))
    assert "same path /in/a with different sources" in found
    assert "FILE file:///tmp/a and inline content" in found, found


def test_host_paths_stay_inside_the_attempt(tmp_path: Path) -> None:
    layout = plan_layout(t(volumes=["/v"]), tmp_path)
    assert layout.host("/v/a/b") == tmp_path / "root" / "v" / "a" / "b"
    assert layout.covered("/v/a") and not layout.covered("/vv")
