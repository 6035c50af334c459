"""Outputs: what the container saw at each declared path, delivered to its URL.

The container sees the attempt's ``root/`` (its writable mounts) with the inputs
mounted read-only on top.  On the host an input's mount point is an empty
placeholder, so an input inside an output (a directory output holding it, a
pattern matching it, a file output at its path) is read from where staging
pinned it — the attempt's ``mounts/``, or the checked source path it recorded —
never from the placeholder and never through a name the task can change.  Every
file is opened beneath its base without following a link and delivered from that
open file.

A directory output delivers its directories too, so an empty one survives: made
on ``file://`` (owned like the files) and WebDAV, a zero-byte ``name/`` marker on
S3; a store that keeps no empty directories is named in the system logs.  An
output that delivers no file says so there.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from toolship.errors import StagingError
from toolship.models import FileType, Output, Task, static_dir
from toolship.storage import StageContext, StorageRegistry
from toolship.storage.transfer import FileRecord
from toolship.wildcards import has_wildcard
from toolship.worker.layout import AttemptLayout, inside
from toolship.worker.staging import StagedFile, read_manifest
from toolship.worker.taskfs import (
    TaskPathError,
    describe,
    lstat_beneath,
    open_file,
    regular_files,
)

__all__ = ["collect_outputs", "empty_leaves", "glob_match"]

_DIRECTORY = describe(stat.S_IFDIR)


@dataclass(frozen=True, slots=True)
class _File:
    """A file the container saw at ``cpath``, opened as ``rel`` beneath ``base``."""

    cpath: str
    base: Path
    rel: str
    origin: StagedFile | None  # the input it was staged as: a copy (hashed) or a mount

    @property
    def mounted(self) -> bool:
        return self.origin is not None and not self.origin.sha256


@dataclass(frozen=True, slots=True)
class _Mount:
    """An input mounted read-only at ``cpath``, read back as ``rel`` beneath ``base``."""

    cpath: str
    base: Path
    rel: str
    url: str


@dataclass
class _Found:
    """What an output declaration covers."""

    files: list[tuple[_File, str]]  # with the URL each goes to
    directories: list[str]  # URLs of the empty directories to make


def glob_match(path: str, pattern: str) -> bool:
    """POSIX glob semantics: wildcards never match across a '/'."""
    parts, pats = path.split("/"), pattern.split("/")
    return len(parts) == len(pats) and all(
        fnmatch.fnmatchcase(part, pat) for part, pat in zip(parts, pats, strict=True)
    )


def empty_leaves(top: str, directories: list[str], files: list[str]) -> list[str]:
    """The directories nothing else is delivered into, relative to ``top`` ("": ``top``)."""
    filled: set[str] = set()
    for entry in (*directories, *files):
        parent = posixpath.dirname(entry) if entry != top else None
        while parent is not None and inside(parent, top) and parent not in filled:
            filled.add(parent)
            parent = posixpath.dirname(parent) if parent != top else None
    return sorted(_below(d, top) for d in directories if d not in filled)


def _below(path: str, top: str) -> str:
    return path[len(top) :].lstrip("/") if top != "/" else path.lstrip("/")


def _pinned_at(layout: AttemptLayout, host: str) -> tuple[Path, str]:
    """Where a pinned input is opened from: beneath the attempt's ``mounts/``, or ``/``."""
    mounts = layout.base / "mounts"
    path = Path(host)
    if path.is_relative_to(mounts):
        return mounts, str(path.relative_to(mounts))
    return Path("/"), host


class _View:
    """The container's view of its files: ``root/`` with the inputs mounted on top."""

    def __init__(self, layout: AttemptLayout, warnings: list[str]) -> None:
        staged = read_manifest(layout)
        self.layout = layout
        self.warnings = warnings
        self.staged = {s.path: s for s in staged}
        # every mount point: an older toolship did not record where its mounts came from
        self.points = {s.path for s in staged if not s.sha256}
        self.mounts = [
            _Mount(s.path, *_pinned_at(layout, s.host), s.url)
            for s in staged
            if not s.sha256 and s.host
        ]

    def _holder(self, cpath: str) -> _Mount | None:
        """The (innermost) input mounted at or above ``cpath``."""
        holding = [m for m in self.mounts if inside(cpath, m.cpath)]
        return max(holding, key=lambda m: len(m.cpath), default=None)

    def _locate(self, cpath: str) -> tuple[Path, str, _Mount | None]:
        """Where ``cpath`` is read on the host: (base, path beneath it, the mount if any)."""
        holder = self._holder(cpath)
        if holder is not None:
            return holder.base, posixpath.join(holder.rel, _below(cpath, holder.cpath)), holder
        if any(inside(cpath, p) for p in self.points):
            raise StagingError(
                f"output {cpath} is an input mounted by an older toolship, which did not "
                "record where from; run the task again to deliver it"
            )
        return self.layout.root, cpath, None

    def _origin(self, cpath: str, mount: _Mount | None) -> StagedFile | None:
        if mount is None:
            return self.staged.get(cpath)
        rel = _below(cpath, mount.cpath)
        return StagedFile(cpath, _join(mount.url, rel) if rel else mount.url, 0, "")

    def _stat(self, cpath: str, expected: FileType) -> tuple[Path, str, _Mount | None] | None:
        """Where the ``expected`` thing at ``cpath`` is; None when nothing; refused if other."""
        base, rel, mount = self._locate(cpath)
        found = lstat_beneath(base, rel, "output", cpath)
        if found is None:
            return None
        wanted = stat.S_ISDIR if expected is FileType.DIRECTORY else stat.S_ISREG
        if not wanted(found.st_mode):
            raise TaskPathError(
                f"output {cpath} is {describe(found.st_mode)}, not "
                f"{'a directory' if expected is FileType.DIRECTORY else 'a regular file'}; "
                "toolship never follows links and never reads FIFOs or devices that a task "
                "creates"
            )
        return base, rel, mount

    def file(self, cpath: str) -> _File | None:
        where = self._stat(cpath, FileType.FILE)
        if where is None:
            return None
        base, rel, mount = where
        return _File(cpath, base, rel, self._origin(cpath, mount))

    def directory(
        self, top: str, pattern: str | None = None
    ) -> tuple[list[_File], list[str]] | None:
        """The files (matching ``pattern``) and directories under ``top``, ``top`` included.

        None when nothing is at ``top``; refused when something else than a directory is.
        """
        where = self._stat(top, FileType.DIRECTORY)
        if where is None:
            return None
        base, rel, mount = where
        files: list[_File] = []
        directories = [top]
        for sub, kind in regular_files(base, rel, "output", top, directories=True):
            cpath = posixpath.join(top, sub)
            if mount is None and any(inside(cpath, p) for p in self.points):
                continue  # a placeholder under an input's mount: the input is read below
            if kind == _DIRECTORY:
                directories.append(cpath)
            elif pattern is not None and not glob_match(cpath, pattern):
                continue
            elif kind:
                self.warnings.append(
                    f"output {cpath} was not uploaded: it is {kind}, not a regular file"
                )
            else:
                origin = self._origin(cpath, mount)
                files.append(_File(cpath, base, posixpath.join(rel, sub), origin))
        if mount is None:
            for inner in self._outermost_within(top):
                self._add_mount(inner, pattern, files, directories)
        return files, directories

    def _outermost_within(self, top: str) -> list[_Mount]:
        within = [m for m in self.mounts if m.cpath != top and inside(m.cpath, top)]
        return [
            m for m in within if not any(o is not m and inside(m.cpath, o.cpath) for o in within)
        ]

    def _add_mount(
        self, mount: _Mount, pattern: str | None, files: list[_File], directories: list[str]
    ) -> None:
        found = lstat_beneath(mount.base, mount.rel, "output", mount.cpath)
        if found is None:
            self.warnings.append(
                f"input {mount.cpath} inside an output was not delivered: its source "
                f"{mount.url} is gone"
            )
            return
        is_dir = stat.S_ISDIR(found.st_mode)
        tree = self.directory(mount.cpath, pattern) if is_dir else None
        if tree is not None:
            files += tree[0]
            directories += tree[1]
        elif pattern is None or glob_match(mount.cpath, pattern):
            file = self.file(mount.cpath)
            files += [file] if file is not None else []


def _expand(out: Output, view: _View) -> tuple[list[tuple[_File, str]], list[str]]:
    """Each file an output covers with its destination URL; the empty directories' URLs."""
    if has_wildcard(out.path):
        prefix = (out.path_prefix or static_dir(out.path)).rstrip("/")
        files = (view.directory(static_dir(out.path), out.path) or ([], []))[0]
        return [(f, _join(out.url, f.cpath[len(prefix) :].lstrip("/"))) for f in files], []
    if out.type is FileType.DIRECTORY:
        tree = view.directory(out.path)
        if tree is None:
            raise StagingError(f"output directory {out.path} was not created by the executors")
        files, directories = tree
        leaves = empty_leaves(out.path, directories, [f.cpath for f in files])
        urls = [_join(out.url, leaf) if leaf else out.url for leaf in leaves]
        return [(f, _join(out.url, _below(f.cpath, out.path))) for f in files], urls
    file = view.file(out.path)
    if file is None:
        raise StagingError(f"output file {out.path} was not created by the executors")
    return [(file, out.url)], []


def collect_outputs(
    task: Task,
    layout: AttemptLayout,
    storage: StorageRegistry,
    ctx: StageContext,
    *,
    strict: bool,
) -> tuple[list[StagedFile], list[str]]:
    """Deliver every output; return what was written and system logs for the rest.

    A fetched input left unchanged is not uploaded back to the URL it came from,
    nor a mounted one onto its own URL.  With ``strict`` a declared output the
    executors did not create, or that is not what it was declared to be, is an
    error; without (the executors failed) it is only a warning.
    """
    warnings: list[str] = []
    found = _cover(task.outputs or [], _View(layout, warnings), warnings, strict=strict)
    files: dict[str, _File] = {}  # by URL: two declarations may deliver one file
    directories: set[str] = set()
    for _, what in found:
        files.update((url, f) for f, url in what.files if url not in files)
        directories.update(what.directories)
    file_jobs = {url: ctx.pool.submit(_deliver, storage, f, url, ctx) for url, f in files.items()}
    dir_jobs = {url: ctx.pool.submit(_make, storage, url, ctx) for url in sorted(directories)}
    delivered = []
    for url, job in file_jobs.items():
        try:
            record = job.result()
        except TaskPathError as exc:  # changed since it was listed (a process left running)
            if strict:
                raise
            warnings.append(str(exc))
            continue
        if record is not None:
            delivered.append(StagedFile(files[url].cpath, url, record.size, record.sha256))
    lost = {url for url, job in dir_jobs.items() if not job.result()}
    for out, what in found:
        note = _note(out, what, [url for url in what.directories if url in lost])
        if note:
            warnings.append(note)
    return delivered, warnings


def _cover(
    outputs: list[Output], view: _View, warnings: list[str], *, strict: bool
) -> list[tuple[Output, _Found]]:
    """What each output declaration covers; one that failed is a warning unless ``strict``."""
    found = []
    for out in outputs:
        try:
            found.append((out, _Found(*_expand(out, view))))
        except StagingError as exc:
            if strict:
                raise
            warnings.append(str(exc))
    return found


def _note(out: Output, found: _Found, lost: list[str]) -> str | None:
    """The system log of an output that delivered no file, or lost empty directories."""
    if has_wildcard(out.path):
        if found.files:
            return None
        return f"output {out.path} matched no file: nothing delivered to {out.url}"
    if out.type is not FileType.DIRECTORY:
        return None
    scheme = urlsplit(out.url).scheme or "file"
    if lost and not found.files and len(lost) == len(found.directories):
        return (
            f"output directory {out.path} held no files and {scheme}:// keeps no empty "
            f"directories: nothing was delivered to {out.url}"
        )
    if lost:
        shown = ", ".join(lost[:3]) + (f" and {len(lost) - 3} more" if len(lost) > 3 else "")
        return (
            f"output directory {out.path}: {len(lost)} empty director"
            f"{'y was' if len(lost) == 1 else 'ies were'} not kept ({shown}): {scheme}:// "
            "keeps no empty directories"
        )
    if found.files:
        return None
    made = "an empty directory" if found.directories == [out.url] else "its empty directories"
    return f"output directory {out.path} held no files: delivered as {made} to {out.url}"


def _make(storage: StorageRegistry, url: str, ctx: StageContext) -> bool:
    return storage.for_url(url).deliver_directory(url, ctx)


def _deliver(
    storage: StorageRegistry, file: _File, url: str, ctx: StageContext
) -> FileRecord | None:
    """Deliver one file from the file opened beneath its base (None: the URL holds it)."""
    if file.mounted and file.origin is not None and _same(file.origin.url, url):
        return None
    try:
        fd = open_file(file.base, file.rel, "output", file.cpath)
    except FileNotFoundError:
        raise StagingError(
            f"output file {file.cpath} disappeared before it was delivered"
        ) from None
    try:
        if not file.mounted and _unchanged(file.origin, os.fstat(fd), url):
            return None
        # The backend reopens the very inode this descriptor holds, whatever the name is now.
        return storage.for_url(url).deliver(Path(f"/proc/self/fd/{fd}"), url, ctx)
    finally:
        os.close(fd)


def _unchanged(record: StagedFile | None, found: os.stat_result, url: str) -> bool:
    if record is None or not record.sha256 or not _same(record.url, url):
        return False
    return found.st_size == record.size and found.st_mtime_ns == record.mtime_ns


def _same(a: str, b: str) -> bool:
    """One URL, spelled as a plain path or as file:// (what a task may send either way)."""
    return (f"file://{a}" if a.startswith("/") else a) == (
        f"file://{b}" if b.startswith("/") else b
    )


def _join(base: str, relative: str) -> str:
    parts = relative.split("/")
    if ".." in parts or relative.startswith("/"):
        raise StagingError(f"output name {relative!r} would escape {base}")
    return base.rstrip("/") + "/" + relative
