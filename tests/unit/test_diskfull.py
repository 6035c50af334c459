"""A write that found no room is said as "disk full in FOLDER", with the fix."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from toolship.errors import StagingError
from toolship.worker.diskfull import explain


def _wrapped(inner: OSError) -> StagingError:
    """What a transfer raises: its own error, caused by the OSError it hit."""
    try:
        try:
            raise inner
        except OSError as exc:
            raise StagingError(f"download of s3://b/k failed: {exc}") from exc
    except StagingError as outer:
        return outer


def test_a_full_work_directory_is_named_with_its_room_and_the_fix(tmp_path: Path) -> None:
    exc = _wrapped(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    said = explain(exc, tmp_path)
    assert said is not None
    assert said.startswith(f"disk full in {tmp_path} (")
    assert " free of " in said and "download of s3://b/k failed: " in said
    assert said.endswith("give toolship's work directory a larger file system")


def test_the_folder_of_the_write_outside_the_work_directory(tmp_path: Path) -> None:
    target = tmp_path / "results" / "out.bin"
    target.parent.mkdir()
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    said = explain(exc, tmp_path / "work")
    assert said is not None and said.startswith(f"disk full in {target.parent} ")
    assert said.endswith("give that folder a larger file system")


def test_other_failures_are_left_as_they_are(tmp_path: Path) -> None:
    assert explain(_wrapped(OSError(errno.EACCES, "Permission denied")), tmp_path) is None
    assert explain(StagingError("upload to s3://b/k failed: refused"), tmp_path) is None
