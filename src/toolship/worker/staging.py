"""Staging for one attempt: inputs into place (mounted, or fetched); outputs.py sends them back.

Local inputs are bind-mounted read-only where they are (zero-copy).  Fetched
inputs land straight in the writable directory that holds their path (a copy
the task may change), or beside the attempt and mounted read-only.  What was
staged is written down (``staged-inputs.json``): each file's hash, and for a
mounted input the host path its mount comes from, which the output collection
reads it back from.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from toolship.errors import StagingError
from toolship.models import FileType, Input, Task, distinct_inputs
from toolship.runtime import Mount
from toolship.storage import MissingInput, StageContext, StorageRegistry
from toolship.storage.local import LocalStorage, hand_over, release_mounts
from toolship.storage.transfer import sha256_file
from toolship.worker.layout import AttemptLayout
from toolship.worker.taskfs import fresh_directory, remove

__all__ = ["SharedDirs", "StagedFile", "prepare_inputs", "read_manifest"]


@dataclass(frozen=True, slots=True)
class StagedFile:
    """One file moved by staging (or mounted, with no hash: its bytes were not read)."""

    path: str  # container path
    url: str
    size: int
    sha256: str
    mtime_ns: int = 0
    host: str = ""  # a mounted input: the host path its mount comes from


@dataclass(frozen=True, slots=True)
class SharedDirs:
    """The operator's folders that every container sees, read-write, at their own path."""

    dirs: tuple[Path, ...] = ()  # local.shared_dirs
    # Resolved folders in ``dirs`` where an input a task names is mounted read-write too
    # (local.writable_shared_dirs); elsewhere inputs are read-only.
    writable: tuple[Path, ...] = ()


NOT_SHARED = SharedDirs()


def prepare_inputs(
    task: Task,
    layout: AttemptLayout,
    storage: StorageRegistry,
    ctx: StageContext,
    *,
    isolated: bool,
    shared: SharedDirs = NOT_SHARED,
    copy_local: bool = False,
    owner: tuple[int, int] | None = None,
) -> tuple[list[Mount], list[StagedFile], list[str]]:
    """Create the attempt's directories afresh and put every input where the executors expect it.

    Staging writes only into directories it has just made: what an earlier, interrupted
    staging of this attempt left (a restart before any executor ran) is removed first,
    never written into.  Returns the mounts, the files staged and notes for the task's
    system log: a local input mounted read-only inside a shared dir says how an operator
    lets tasks write it in place.
    """
    if _leftover(layout):
        release_mounts(layout.base)
        remove(layout.content_dir)
    fresh_directory(layout.root)
    layout.logs.mkdir(exist_ok=True)
    mounts: list[Mount] = [
        Mount(host=d, container=str(d), readonly=False)
        for d in shared.dirs
        if str(d) not in layout.writable
    ]
    for d in layout.writable:
        host = layout.host(d)
        host.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(host=host, container=d, readonly=False))
    for volume in task.volumes or []:  # a volume inside another writable folder exists too
        layout.host(volume).mkdir(parents=True, exist_ok=True)
    staged: list[StagedFile] = []
    notes: list[str] = []
    synced = _synced_folders(task)
    for index, inp in enumerate(distinct_inputs(task.inputs)):
        try:
            mount, files = _stage_input(
                inp, index, layout, storage, ctx, isolated=isolated, copy_local=copy_local,
                writable_dirs=shared.writable,
            )  # fmt: skip
        except MissingInput:
            if inp.type is not FileType.DIRECTORY or (inp.path, inp.url) not in synced:
                raise
            # A new folder, as `aws s3 sync` and rsync make one: the task's files create it.
            layout.host(inp.path).mkdir(parents=True, exist_ok=True)
            mount, files = None, []
            notes.append(
                f"input folder {inp.url} does not exist yet: {inp.path} starts empty and "
                "what the task leaves there creates it"
            )
        if mount is not None and mount.readonly and not copy_local:
            notes += _read_only_in_shared(inp, storage, shared.dirs)
        staged += files
        if mount is not None:
            mounts.append(mount)
    if staged:
        _write_manifest(layout, staged)
    if owner is not None:
        hand_over(layout.root, owner)  # the task's user writes its directories and copies
    return mounts, staged, notes


def _synced_folders(task: Task) -> set[tuple[str, str]]:
    """(path, URL) of each folder the task syncs: a directory input that a directory output
    of the same path delivers back to the same URL (what ``--sync`` sends)."""
    return {(out.path, out.url) for out in task.outputs or [] if out.type is FileType.DIRECTORY}


def _leftover(layout: AttemptLayout) -> bool:
    return os.path.lexists(layout.root) or os.path.lexists(layout.content_dir)


def _stage_input(
    inp: Input,
    index: int,
    layout: AttemptLayout,
    storage: StorageRegistry,
    ctx: StageContext,
    *,
    isolated: bool,
    copy_local: bool,
    writable_dirs: Sequence[Path],
) -> tuple[Mount | None, list[StagedFile]]:
    in_place = not isolated or layout.covered(inp.path)
    dest = layout.host(inp.path) if in_place else layout.content_dir / f"input-{index}"
    if inp.content is not None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(inp.content)
        return _mount_unless(in_place, dest, inp.path), [_record(inp.path, "", dest)]
    assert inp.url is not None
    backend = storage.for_url(inp.url)
    local = backend.local_source(inp.url)
    zero_copy = (
        isolated and local is not None and not copy_local and inp.path not in layout.writable
    )
    if local is not None:
        _check_kind(inp, local)
        if zero_copy:
            _placeholder(layout, inp)
            assert isinstance(backend, LocalStorage)  # the only one with a local source
            pinned = backend.pin(
                inp.url, inp.type.value, layout.base / "mounts" / f"input-{index}",
                writable_in=writable_dirs,
            )  # fmt: skip
            return Mount(host=pinned.host, container=inp.path, readonly=not pinned.writable), [
                StagedFile(inp.path, inp.url, pinned.size, "", pinned.mtime_ns, str(pinned.host))
            ]
    records = backend.fetch(inp.url, dest, inp.type.value, ctx)
    files = [
        _record(posixpath.join(inp.path, r.path) if r.path else inp.path, r.url, dest / r.path,
                r.sha256)
        for r in records
    ]  # fmt: skip
    return _mount_unless(in_place, dest, inp.path), files


def _read_only_in_shared(
    inp: Input, storage: StorageRegistry, shared_dirs: Sequence[Path]
) -> list[str]:
    """Why a task that writes this read-only input fails, when it lies in a shared dir."""
    try:
        source = storage.for_url(inp.url).local_source(inp.url) if inp.url else None
    except StagingError:  # moved since it was staged: a note never fails the task
        return []
    if source is None:
        return []
    for folder in shared_dirs:
        if source.is_relative_to(folder.resolve()):
            return [
                f"input {inp.path} is mounted read-only although it lies in local.shared_dirs "
                f"({folder}), which tasks can write; for tasks to change inputs there in "
                "place (as Toil's file job store needs), the operator adds the folder to "
                "local.writable_shared_dirs"
            ]
    return []


def _record(cpath: str, url: str, host: Path, sha256: str = "") -> StagedFile:
    found = host.stat()
    return StagedFile(cpath, url, found.st_size, sha256 or sha256_file(host), found.st_mtime_ns)


def _mount_unless(in_place: bool, host: Path, container: str) -> Mount | None:
    return None if in_place else Mount(host=host, container=container, readonly=True)


def _check_kind(inp: Input, local: Path) -> None:
    """One stat answers both questions: a path swapped between two is never "a file"."""
    try:
        is_dir = stat.S_ISDIR(local.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        raise MissingInput(inp.url or "") from None
    if inp.type is FileType.DIRECTORY and not is_dir:
        raise StagingError(f"input {inp.url} is a file, but the task declares a DIRECTORY")
    if inp.type is FileType.FILE and is_dir:
        raise StagingError(f"input {inp.url} is a directory, but the task declares a FILE")


def _placeholder(layout: AttemptLayout, inp: Input) -> None:
    """A mount point inside a writable mount: create it ourselves, owned by us."""
    if not layout.covered(inp.path):
        return
    placeholder = layout.host(inp.path)
    placeholder.parent.mkdir(parents=True, exist_ok=True)
    if inp.type is FileType.DIRECTORY:
        placeholder.mkdir(exist_ok=True)
    elif not placeholder.exists():
        placeholder.touch()


def _manifest(layout: AttemptLayout) -> Path:
    return layout.base / "staged-inputs.json"


def _write_manifest(layout: AttemptLayout, staged: list[StagedFile]) -> None:
    _manifest(layout).write_text(json.dumps([asdict(s) for s in staged]))


def read_manifest(layout: AttemptLayout) -> list[StagedFile]:
    try:
        return [StagedFile(**d) for d in json.loads(_manifest(layout).read_text())]
    except FileNotFoundError:
        return []
