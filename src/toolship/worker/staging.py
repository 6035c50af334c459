"""Staging for one attempt: inputs into mounts (or copies), outputs back to their URLs."""

from __future__ import annotations

import fnmatch
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolship.errors import StagingError
from toolship.models import FileType, Input, Output, Task, has_wildcard, static_dir
from toolship.runtime import Mount
from toolship.storage import StorageRegistry
from toolship.worker.layout import AttemptLayout

__all__ = ["OutputFile", "collect_outputs", "prepare_inputs"]


def prepare_inputs(
    task: Task,
    layout: AttemptLayout,
    storage: StorageRegistry,
    *,
    isolated: bool,
    shared_dirs: Sequence[Path] = (),
) -> list[Mount]:
    """Create the attempt's directories and put every input where the executors expect it.

    With an isolated runtime, local inputs are mounted read-only from where
    they are; other inputs are fetched into the attempt directory first.
    Without isolation (process runtime) every input is copied into ``root``.
    """
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.logs.mkdir(parents=True, exist_ok=True)
    mounts: list[Mount] = [
        Mount(host=d, container=str(d), readonly=False)
        for d in shared_dirs
        if str(d) not in layout.writable
    ]
    for d in layout.writable:
        host = layout.host(d)
        host.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(host=host, container=d, readonly=False))
    for index, inp in enumerate(task.inputs or []):
        source = _materialise(inp, index, layout, storage, isolated=isolated)
        if not isolated:
            continue
        placeholder = layout.host(inp.path)
        if layout.covered(inp.path):
            # Mount point inside a writable mount: create it ourselves, owned by us.
            placeholder.parent.mkdir(parents=True, exist_ok=True)
            if inp.type is FileType.DIRECTORY:
                placeholder.mkdir(exist_ok=True)
            elif not placeholder.exists():
                placeholder.touch()
        mounts.append(Mount(host=source, container=inp.path, readonly=True))
    return mounts


def _materialise(
    inp: Input, index: int, layout: AttemptLayout, storage: StorageRegistry, *, isolated: bool
) -> Path:
    """Where the bytes of ``inp`` are on the host (fetching them if they must be)."""
    if inp.content is not None:
        dest = layout.host(inp.path) if not isolated else layout.content_dir / f"input-{index}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(inp.content)
        return dest
    assert inp.url is not None
    backend = storage.for_url(inp.url)
    local = backend.local_source(inp.url)
    if local is not None:
        if not local.exists():
            raise StagingError(f"input {inp.url} does not exist")
        if inp.type is FileType.DIRECTORY and not local.is_dir():
            raise StagingError(f"input {inp.url} is a file, but the task declares a DIRECTORY")
        if inp.type is FileType.FILE and local.is_dir():
            raise StagingError(f"input {inp.url} is a directory, but the task declares a FILE")
        if isolated:
            return local
    dest = layout.host(inp.path) if not isolated else layout.content_dir / f"input-{index}"
    backend.fetch(inp.url, dest, inp.type.value)
    return dest


@dataclass(frozen=True, slots=True)
class OutputFile:
    url: str
    path: str  # container path
    size: int


def _safe_file(layout: AttemptLayout, host: Path) -> bool:
    """A regular file whose real location is inside the attempt's root (no symlink escapes)."""
    try:
        real = host.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        return False
    return real.is_relative_to(layout.root.resolve()) and real.is_file()


def _walk(layout: AttemptLayout, container_dir: str) -> list[str]:
    """Container paths of the regular files under ``container_dir``."""
    base = layout.host(container_dir)
    found: list[str] = []
    for dirpath, _dirs, files in os.walk(base, followlinks=False):
        rel_dir = Path(dirpath).relative_to(base).as_posix()
        for name in files:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            found.append(posixpath.join(container_dir, rel))
    return sorted(found)


def _matches(layout: AttemptLayout, pattern: str) -> list[str]:
    start = static_dir(pattern)
    if not layout.host(start).is_dir():
        return []
    return [p for p in _walk(layout, start) if fnmatch.fnmatchcase(p, pattern)]


def collect_outputs(
    task: Task, layout: AttemptLayout, storage: StorageRegistry, skip: set[str], *, strict: bool
) -> tuple[list[OutputFile], list[str]]:
    """Deliver every output; return what was written and warnings for what was not.

    ``skip`` holds container paths of input mount points, which must never be
    uploaded (they are empty placeholders on the host).  With ``strict`` a
    declared output the executors did not create is an error; without (the
    executors failed) it is only a warning, and whatever exists is delivered.
    """
    delivered: list[OutputFile] = []
    warnings: list[str] = []
    for out in task.outputs or []:
        try:
            files = _expand(out, layout)
        except StagingError as exc:
            if strict:
                raise
            warnings.append(str(exc))
            continue
        for cpath, url in files:
            if cpath in skip:
                continue
            host = layout.host(cpath)
            if not _safe_file(layout, host):
                warnings.append(
                    f"output {cpath} was not uploaded: it is a symlink out of the task's "
                    "directory or not a regular file"
                )
                continue
            storage.for_url(url).deliver(host, url)
            delivered.append(OutputFile(url=url, path=cpath, size=host.stat().st_size))
    return delivered, warnings


def _expand(out: Output, layout: AttemptLayout) -> list[tuple[str, str]]:
    """(container path, destination URL) for each file an output declaration covers."""
    if has_wildcard(out.path):
        prefix = (out.path_prefix or static_dir(out.path)).rstrip("/")
        return [
            (p, _join(out.url, p[len(prefix) :].lstrip("/"))) for p in _matches(layout, out.path)
        ]
    if out.type is FileType.DIRECTORY:
        if not layout.host(out.path).is_dir():
            raise StagingError(f"output directory {out.path} was not created by the executors")
        return [
            (p, _join(out.url, p[len(out.path) :].lstrip("/"))) for p in _walk(layout, out.path)
        ]
    if not layout.host(out.path).exists():
        raise StagingError(f"output file {out.path} was not created by the executors")
    return [(out.path, out.url)]


def _join(base: str, relative: str) -> str:
    parts = relative.split("/")
    if ".." in parts or relative.startswith("/"):
        raise StagingError(f"output name {relative!r} would escape {base}")
    return base.rstrip("/") + "/" + relative
