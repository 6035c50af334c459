"""Staging for one attempt: inputs into place (mounted, or fetched), outputs back to URLs.

Local inputs are bind-mounted read-only where they are (zero-copy).  Fetched
inputs land straight in the writable directory that holds their path (a copy
the task may change), or beside the attempt and mounted read-only.  Outputs
that are byte-for-byte the input they were staged from are not uploaded again
(``--sync`` uploads new and changed files only).
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import stat
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from toolship.errors import StagingError
from toolship.models import FileType, Input, Output, Task, distinct_inputs, static_dir
from toolship.runtime import Mount
from toolship.storage import StageContext, StorageRegistry
from toolship.storage.local import LocalStorage, hand_over, release_mounts
from toolship.storage.transfer import FileRecord, sha256_file
from toolship.wildcards import has_wildcard
from toolship.worker.layout import AttemptLayout
from toolship.worker.taskfs import (
    TaskPathError,
    describe,
    fresh_directory,
    lstat_beneath,
    open_file,
    regular_files,
    remove,
)

__all__ = ["StagedFile", "collect_outputs", "prepare_inputs"]


@dataclass(frozen=True, slots=True)
class StagedFile:
    """One file moved by staging (or mounted, with no hash: its bytes were not read)."""

    path: str  # container path
    url: str
    size: int
    sha256: str
    mtime_ns: int = 0


def prepare_inputs(
    task: Task,
    layout: AttemptLayout,
    storage: StorageRegistry,
    ctx: StageContext,
    *,
    isolated: bool,
    shared_dirs: Sequence[Path] = (),
    copy_local: bool = False,
    owner: tuple[int, int] | None = None,
) -> tuple[list[Mount], list[StagedFile]]:
    """Create the attempt's directories afresh and put every input where the executors expect it.

    Staging writes only into directories it has just made: what an earlier, interrupted
    staging of this attempt left (a restart before any executor ran) is removed first,
    never written into.
    """
    if _leftover(layout):
        release_mounts(layout.base)
        remove(layout.content_dir)
    fresh_directory(layout.root)
    layout.logs.mkdir(exist_ok=True)
    mounts: list[Mount] = [
        Mount(host=d, container=str(d), readonly=False)
        for d in shared_dirs
        if str(d) not in layout.writable
    ]
    for d in layout.writable:
        host = layout.host(d)
        host.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(host=host, container=d, readonly=False))
    for volume in task.volumes or []:  # a volume inside another writable folder exists too
        layout.host(volume).mkdir(parents=True, exist_ok=True)
    staged: list[StagedFile] = []
    for index, inp in enumerate(distinct_inputs(task.inputs)):
        mount, files = _stage_input(
            inp, index, layout, storage, ctx, isolated=isolated, copy_local=copy_local
        )
        staged += files
        if mount is not None:
            mounts.append(mount)
    if staged:
        _write_manifest(layout, staged)
    if owner is not None:
        hand_over(layout.root, owner)  # the task's user writes its directories and copies
    return mounts, staged


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
            pinned = backend.pin(inp.url, inp.type.value, layout.base / "mounts" / f"input-{index}")
            return Mount(host=pinned.host, container=inp.path, readonly=True), [
                StagedFile(inp.path, inp.url, pinned.size, "", pinned.mtime_ns)
            ]
    records = backend.fetch(inp.url, dest, inp.type.value, ctx)
    files = [
        _record(posixpath.join(inp.path, r.path) if r.path else inp.path, r.url, dest / r.path,
                r.sha256)
        for r in records
    ]  # fmt: skip
    return _mount_unless(in_place, dest, inp.path), files


def _record(cpath: str, url: str, host: Path, sha256: str = "") -> StagedFile:
    found = host.stat()
    return StagedFile(cpath, url, found.st_size, sha256 or sha256_file(host), found.st_mtime_ns)


def _mount_unless(in_place: bool, host: Path, container: str) -> Mount | None:
    return None if in_place else Mount(host=host, container=container, readonly=True)


def _check_kind(inp: Input, local: Path) -> None:
    if not local.exists():
        raise StagingError(f"input {inp.url} does not exist")
    if inp.type is FileType.DIRECTORY and not local.is_dir():
        raise StagingError(f"input {inp.url} is a file, but the task declares a DIRECTORY")
    if inp.type is FileType.FILE and local.is_dir():
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


def _walk(
    layout: AttemptLayout, container_dir: str, warnings: list[str], pattern: str | None = None
) -> list[str]:
    """Container paths of the regular files under ``container_dir`` (matching ``pattern``).

    Walked by directory descriptors; anything else found (a link, a FIFO, a device)
    is left out with a warning.
    """
    found: list[str] = []
    for rel, kind in regular_files(layout.root, container_dir, "output", container_dir):
        cpath = posixpath.join(container_dir, rel)
        if pattern is not None and not glob_match(cpath, pattern):
            continue
        if kind:
            warnings.append(f"output {cpath} was not uploaded: it is {kind}, not a regular file")
        else:
            found.append(cpath)
    return found


def glob_match(path: str, pattern: str) -> bool:
    """POSIX glob semantics: wildcards never match across a '/'."""
    parts, pats = path.split("/"), pattern.split("/")
    return len(parts) == len(pats) and all(
        fnmatch.fnmatchcase(part, pat) for part, pat in zip(parts, pats, strict=True)
    )


def _matches(layout: AttemptLayout, pattern: str, warnings: list[str]) -> list[str]:
    start = static_dir(pattern)
    if _kind(layout, start, FileType.DIRECTORY) is None:
        return []
    return _walk(layout, start, warnings, pattern)


def collect_outputs(
    task: Task,
    layout: AttemptLayout,
    storage: StorageRegistry,
    ctx: StageContext,
    *,
    strict: bool,
) -> tuple[list[StagedFile], list[str]]:
    """Deliver every output; return what was written and warnings for what was not.

    Every file is opened beneath the attempt's root without following a link and
    delivered from that open file.  Read-only input mount points are never uploaded
    (on the host they are empty placeholders); a fetched input left unchanged is not
    uploaded back to the URL it came from.  With ``strict`` a declared output the
    executors did not create, or that is not a regular file, is an error; without
    (the executors failed) it is only a warning.
    """
    staged = {s.path: s for s in read_manifest(layout)}
    mounted = {s.path for s in staged.values() if not s.sha256}  # zero-copy mount points
    jobs: list[tuple[str, str]] = []
    targets: set[str] = set()
    warnings: list[str] = []
    for out in task.outputs or []:
        try:
            files = _expand(out, layout, warnings)
        except StagingError as exc:
            if strict:
                raise
            warnings.append(str(exc))
            continue
        for cpath, url in files:
            if cpath not in mounted and url not in targets:  # two may deliver one file
                targets.add(url)
                jobs.append((cpath, url))
    futures = [
        ctx.pool.submit(_deliver, layout, storage, staged.get(cpath), cpath, url, ctx)
        for cpath, url in jobs
    ]
    delivered = []
    for (cpath, url), future in zip(jobs, futures, strict=True):
        try:
            record = future.result()
        except TaskPathError as exc:  # changed since it was listed (a process left running)
            if strict:
                raise
            warnings.append(str(exc))
            continue
        if record is not None:
            delivered.append(StagedFile(cpath, url, record.size, record.sha256))
    return delivered, warnings


def _deliver(
    layout: AttemptLayout,
    storage: StorageRegistry,
    record: StagedFile | None,
    cpath: str,
    url: str,
    ctx: StageContext,
) -> FileRecord | None:
    """Deliver one output from the file opened beneath the root (None: unchanged input)."""
    try:
        fd = open_file(layout.root, cpath, "output", cpath)
    except FileNotFoundError:
        raise StagingError(f"output file {cpath} disappeared before it was delivered") from None
    try:
        if _unchanged(record, os.fstat(fd), url):
            return None
        # The backend reopens the very inode this descriptor holds, whatever the name is now.
        return storage.for_url(url).deliver(Path(f"/proc/self/fd/{fd}"), url, ctx)
    finally:
        os.close(fd)


def _unchanged(record: StagedFile | None, found: os.stat_result, url: str) -> bool:
    if record is None or not record.sha256 or record.url != url:
        return False
    return found.st_size == record.size and found.st_mtime_ns == record.mtime_ns


def _kind(layout: AttemptLayout, cpath: str, expected: FileType) -> os.stat_result | None:
    """What is at an output path: None when nothing; refused when not of the expected type."""
    found = lstat_beneath(layout.root, cpath, "output", cpath)
    if found is None:
        return None
    wanted = stat.S_ISDIR if expected is FileType.DIRECTORY else stat.S_ISREG
    if not wanted(found.st_mode):
        raise TaskPathError(
            f"output {cpath} is {describe(found.st_mode)}, not "
            f"{'a directory' if expected is FileType.DIRECTORY else 'a regular file'}; "
            "toolship never follows links and never reads FIFOs or devices that a task creates"
        )
    return found


def _expand(out: Output, layout: AttemptLayout, warnings: list[str]) -> list[tuple[str, str]]:
    """(container path, destination URL) for each file an output declaration covers."""
    if has_wildcard(out.path):
        prefix = (out.path_prefix or static_dir(out.path)).rstrip("/")
        matches = _matches(layout, out.path, warnings)
        return [(p, _join(out.url, p[len(prefix) :].lstrip("/"))) for p in matches]
    if out.type is FileType.DIRECTORY:
        if _kind(layout, out.path, FileType.DIRECTORY) is None:
            raise StagingError(f"output directory {out.path} was not created by the executors")
        files = _walk(layout, out.path, warnings)
        return [(p, _join(out.url, p[len(out.path) :].lstrip("/"))) for p in files]
    if _kind(layout, out.path, FileType.FILE) is None:
        raise StagingError(f"output file {out.path} was not created by the executors")
    return [(out.path, out.url)]


def _join(base: str, relative: str) -> str:
    parts = relative.split("/")
    if ".." in parts or relative.startswith("/"):
        raise StagingError(f"output name {relative!r} would escape {base}")
    return base.rstrip("/") + "/" + relative
