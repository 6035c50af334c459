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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from toolship.errors import StagingError
from toolship.models import FileType, Input, Output, Task, has_wildcard, static_dir
from toolship.runtime import Mount
from toolship.storage import StageContext, StorageRegistry
from toolship.storage.local import LocalStorage, hand_over
from toolship.storage.transfer import sha256_file
from toolship.worker.layout import AttemptLayout

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
    """Create the attempt's directories and put every input where the executors expect it."""
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
    for volume in task.volumes or []:  # a volume inside another writable folder exists too
        layout.host(volume).mkdir(parents=True, exist_ok=True)
    staged: list[StagedFile] = []
    for index, inp in enumerate(task.inputs or []):
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
    stat = host.stat()
    return StagedFile(cpath, url, stat.st_size, sha256 or sha256_file(host), stat.st_mtime_ns)


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


def glob_match(path: str, pattern: str) -> bool:
    """POSIX glob semantics: wildcards never match across a '/'."""
    parts, pats = path.split("/"), pattern.split("/")
    return len(parts) == len(pats) and all(
        fnmatch.fnmatchcase(part, pat) for part, pat in zip(parts, pats, strict=True)
    )


def _matches(layout: AttemptLayout, pattern: str) -> list[str]:
    start = static_dir(pattern)
    if not layout.host(start).is_dir():
        return []
    return [p for p in _walk(layout, start) if glob_match(p, pattern)]


def collect_outputs(
    task: Task,
    layout: AttemptLayout,
    storage: StorageRegistry,
    ctx: StageContext,
    *,
    strict: bool,
) -> tuple[list[StagedFile], list[str]]:
    """Deliver every output; return what was written and warnings for what was not.

    Read-only input mount points are never uploaded (on the host they are empty
    placeholders); a fetched input left unchanged is not uploaded back to the
    URL it came from.  With ``strict`` a declared output the executors did not
    create is an error; without (the executors failed) it is only a warning.
    """
    staged = {s.path: s for s in read_manifest(layout)}
    mounted = {s.path for s in staged.values() if not s.sha256}  # zero-copy mount points
    jobs: list[tuple[str, str]] = []
    targets: set[str] = set()
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
            if cpath in mounted or _unchanged(staged.get(cpath), layout.host(cpath), url):
                continue
            if not _safe_file(layout, layout.host(cpath)):
                warnings.append(
                    f"output {cpath} was not uploaded: it is a symlink out of the task's "
                    "directory or not a regular file"
                )
                continue
            if url not in targets:  # two declarations may deliver the same file
                targets.add(url)
                jobs.append((cpath, url))
    futures = [
        ctx.pool.submit(storage.for_url(url).deliver, layout.host(cpath), url, ctx)
        for cpath, url in jobs
    ]
    delivered = []
    for (cpath, url), future in zip(jobs, futures, strict=True):
        record = future.result()
        delivered.append(StagedFile(cpath, url, record.size, record.sha256))
    return delivered, warnings


def _unchanged(record: StagedFile | None, host: Path, url: str) -> bool:
    if record is None or not record.sha256 or record.url != url:
        return False
    try:
        stat = host.stat()
    except FileNotFoundError:
        return False
    return stat.st_size == record.size and stat.st_mtime_ns == record.mtime_ns


def _expand(out: Output, layout: AttemptLayout) -> list[tuple[str, str]]:
    """(container path, destination URL) for each file an output declaration covers."""
    if has_wildcard(out.path):
        prefix = (out.path_prefix or static_dir(out.path)).rstrip("/")
        matches = _matches(layout, out.path)
        return [(p, _join(out.url, p[len(prefix) :].lstrip("/"))) for p in matches]
    if out.type is FileType.DIRECTORY:
        if not layout.host(out.path).is_dir():
            raise StagingError(f"output directory {out.path} was not created by the executors")
        files = _walk(layout, out.path)
        return [(p, _join(out.url, p[len(out.path) :].lstrip("/"))) for p in files]
    if not layout.host(out.path).exists():
        raise StagingError(f"output file {out.path} was not created by the executors")
    return [(out.path, out.url)]


def _join(base: str, relative: str) -> str:
    parts = relative.split("/")
    if ".." in parts or relative.startswith("/"):
        raise StagingError(f"output name {relative!r} would escape {base}")
    return base.rstrip("/") + "/" + relative
