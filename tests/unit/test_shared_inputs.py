"""Inputs in the operator's shared dirs: read-only unless the operator lets tasks write them.

Toil's TES batch system passes its file job store to every task as a DIRECTORY
input at its own path, and the jobs write into it.  ``local.writable_shared_dirs``
(folders inside ``local.shared_dirs``, which every task writes anyway) mounts such
inputs read-write; nothing outside them ever is, whatever the URL says (``..``,
a symlink).  Staged for real: a root server bind-mounts the opened input into the
attempt's ``mounts/``, and what the container would get is that mount.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pytest

from toolship.config import load_settings
from toolship.errors import ConfigError, StagingError
from toolship.models import FileType, Input, Task
from toolship.runtime import Mount
from toolship.storage import StageContext, StorageRegistry
from toolship.storage.local import LocalStorage, release_mounts
from toolship.worker.layout import plan_layout
from toolship.worker.staging import SharedDirs, prepare_inputs


class Stage(Protocol):
    """Stage one DIRECTORY input at ``path``: its mount and the notes for the system log."""

    def __call__(
        self, url: str, path: str, shared: SharedDirs, *, mount: bool = True
    ) -> tuple[Mount, list[str]]: ...


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """shared/ (the operator's shared dir) with jobstore/ in it, and outside/ beside it."""
    for d in ("shared/jobstore", "shared/reference", "shared2", "outside"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "f.txt").write_text(f"{d}\n")
    return tmp_path


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    pool = ThreadPoolExecutor(2)
    bases: list[Path] = []

    def run(
        url: str, path: str, shared: SharedDirs, *, mount: bool = True
    ) -> tuple[Mount, list[str]]:
        task = Task(
            executors=[{"image": "x", "command": ["true"]}],
            inputs=[Input(url=url, path=path, type=FileType.DIRECTORY)],
        )
        layout = plan_layout(task, tmp_path / f"attempt-{len(bases)}")
        bases.append(layout.base)
        storage = StorageRegistry([LocalStorage([tmp_path], mount=mount)])
        mounts, _staged, notes = prepare_inputs(
            task, layout, storage, StageContext(pool=pool), isolated=True, shared=shared
        )
        (found,) = [m for m in mounts if m.container == path]
        return found, notes

    yield run
    for base in bases:
        release_mounts(base)
    pool.shutdown()


def writes_through(mount: Mount, original: Path) -> bool:
    """Can a task write through this mount, and does the write reach ``original``?"""
    try:
        (mount.host / "written.txt").write_text("job\n")
    except OSError as exc:
        assert exc.errno == errno.EROFS
        return False
    return (original / "written.txt").read_text() == "job\n"


def test_by_default_an_input_in_a_shared_dir_is_read_only_and_the_log_says_why(
    tree: Path, stage: Stage
) -> None:
    shared = SharedDirs(dirs=(tree / "shared",))
    store = tree / "shared" / "jobstore"
    mount, notes = stage(f"file://{store}", str(store), shared)
    assert mount.readonly
    assert not writes_through(mount, store)
    (note,) = notes
    assert f"input {store} is mounted read-only" in note
    assert "local.writable_shared_dirs" in note


def test_an_input_in_a_writable_shared_dir_is_mounted_read_write_in_place(
    tree: Path, stage: Stage
) -> None:
    shared = SharedDirs(dirs=(tree / "shared",), writable=(tree / "shared",))
    store = tree / "shared" / "jobstore"
    mount, notes = stage(f"file://{store}", str(store), shared)
    assert not mount.readonly
    assert mount.host != store  # the opened directory, mounted: never its name
    assert writes_through(mount, store)
    assert notes == []


@pytest.mark.parametrize(
    "where",
    [
        "outside",  # beside the shared dir
        "shared2",  # its name begins with the writable dir's name
        "shared/jobstore/../../outside",  # .. in the URL
        "shared/link",  # a symlink inside the writable dir, leading out of it
    ],
)
def test_nothing_outside_the_writable_dirs_is_ever_writable(
    tree: Path, stage: Stage, where: str
) -> None:
    (tree / "shared" / "link").symlink_to(tree / "outside")
    shared = SharedDirs(dirs=(tree / "shared",), writable=(tree / "shared",))
    mount, notes = stage(f"file://{tree / where}", "/data", shared)
    assert mount.readonly
    assert not writes_through(mount, tree / "outside")
    assert notes == []  # it is not in a shared dir: nothing an operator could change


def test_a_writable_dir_narrows_the_shared_dir(tree: Path, stage: Stage) -> None:
    shared = SharedDirs(dirs=(tree / "shared",), writable=(tree / "shared" / "jobstore",))
    ref = tree / "shared" / "reference"
    mount, _notes = stage(f"file://{ref}", str(ref), shared)
    assert mount.readonly
    whole = tree / "shared"  # holds the writable dir, but is not inside it
    mount, _notes = stage(f"file://{whole}", "/data", shared)
    assert mount.readonly


def test_where_no_mount_can_be_made_a_writable_input_is_refused_naming_the_setting(
    tree: Path, stage: Stage
) -> None:
    """A name handed to the container engine could be swapped: never read-write."""
    shared = SharedDirs(dirs=(tree / "shared",), writable=(tree / "shared",))
    store = tree / "shared" / "jobstore"
    with pytest.raises(StagingError) as refused:
        stage(f"file://{store}", str(store), shared, mount=False)
    assert "running as root" in str(refused.value)
    assert "local.writable_shared_dirs" in str(refused.value)


# --- the setting ------------------------------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("TOOLSHIP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TOOLSHIP_CONFIG", raising=False)
    return monkeypatch


def test_the_setting_is_empty_by_default(env: pytest.MonkeyPatch) -> None:
    assert load_settings().local.writable_shared_dirs == []


def test_the_setting_takes_folders_inside_shared_dirs_resolved(
    env: pytest.MonkeyPatch, tree: Path
) -> None:
    env.setenv("TOOLSHIP_LOCAL__SHARED_DIRS", json.dumps([str(tree / "shared")]))
    env.setenv("TOOLSHIP_LOCAL__WRITABLE_SHARED_DIRS", json.dumps([f"{tree}/shared2/../shared"]))
    assert load_settings().local.writable_shared_dirs == [tree / "shared"]


@pytest.mark.parametrize("where", ["outside", "shared2", "shared/link", "shared/.."])
def test_a_writable_dir_outside_the_shared_dirs_is_refused_naming_both_settings(
    env: pytest.MonkeyPatch, tree: Path, where: str
) -> None:
    (tree / "shared" / "link").symlink_to(tree / "outside")
    env.setenv("TOOLSHIP_LOCAL__SHARED_DIRS", json.dumps([str(tree / "shared")]))
    env.setenv("TOOLSHIP_LOCAL__WRITABLE_SHARED_DIRS", json.dumps([str(tree / where)]))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert "local.writable_shared_dirs" in message
    assert "is not inside any of local.shared_dirs" in message
    assert "add it (or a folder above it) to local.shared_dirs" in message


def test_a_relative_writable_dir_is_refused(env: pytest.MonkeyPatch, tree: Path) -> None:
    env.setenv("TOOLSHIP_LOCAL__SHARED_DIRS", json.dumps([str(tree / "shared")]))
    env.setenv("TOOLSHIP_LOCAL__WRITABLE_SHARED_DIRS", json.dumps(["jobstore"]))
    with pytest.raises(ConfigError, match="give absolute paths"):
        load_settings()
