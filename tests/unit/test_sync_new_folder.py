"""`--sync` onto a folder that does not exist yet: it starts empty and the task's files make it
(as `aws s3 sync s3://bucket/job/ ./` does for the seed's first run), while any other missing
input still fails the task before it runs.  Staged and collected for real on file:// URLs."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from toolship.models import FileType, Input, Output, Task
from toolship.spec import build_task
from toolship.storage import MissingInput, StageContext, StorageRegistry
from toolship.storage.local import LocalStorage, release_mounts
from toolship.worker.layout import plan_layout
from toolship.worker.outputs import collect_outputs
from toolship.worker.staging import prepare_inputs


@pytest.fixture
def ctx() -> Iterator[StageContext]:
    with ThreadPoolExecutor(4) as pool:
        yield StageContext(pool=pool)


def test_a_synced_folder_that_does_not_exist_yet_starts_empty_and_is_made(
    tmp_path: Path, ctx: StageContext
) -> None:
    job = tmp_path / "bucket" / "job"
    task = Task.model_validate(build_task("img", ["true"], sync=f"{job}/"))
    layout = plan_layout(task, tmp_path / "attempt")
    storage = StorageRegistry([LocalStorage([tmp_path])])
    try:
        _, staged, notes = prepare_inputs(task, layout, storage, ctx, isolated=True)
        assert staged == []
        assert notes == [
            f"input folder file://{job} does not exist yet: /work starts empty and what the "
            "task leaves there creates it"
        ]
        assert list(layout.host("/work").iterdir()) == []
        (layout.host("/work") / "plot.png").write_bytes(b"png")  # what the executor leaves
        delivered, _ = collect_outputs(task, layout, storage, ctx, strict=True)
    finally:
        release_mounts(layout.base)
    assert [d.path for d in delivered] == ["/work/plot.png"]
    assert (job / "plot.png").read_bytes() == b"png"


def test_any_other_missing_input_still_fails_before_the_task_runs(
    tmp_path: Path, ctx: StageContext
) -> None:
    gone = f"file://{tmp_path}/gone"
    storage = StorageRegistry([LocalStorage([tmp_path])])
    for task in (
        # a directory input delivered elsewhere is not a synced folder
        Task(
            executors=[{"image": "img", "command": ["true"]}],
            inputs=[Input(path="/work/in", url=gone, type=FileType.DIRECTORY)],
            outputs=[Output(path="/work/in", url=f"{gone}-out", type=FileType.DIRECTORY)],
        ),
        Task(
            executors=[{"image": "img", "command": ["true"]}],
            inputs=[Input(path="/work/in.txt", url=gone, type=FileType.FILE)],
        ),
    ):
        layout = plan_layout(task, tmp_path / "attempt")
        try:
            with pytest.raises(MissingInput, match=f"input {gone} does not exist"):
                prepare_inputs(task, layout, storage, ctx, isolated=True)
        finally:
            release_mounts(layout.base)
