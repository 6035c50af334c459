"""The bytes of an attempt's inputs: hashing what was mounted, checking a rerun's inputs.

Staging hashes every byte it moves; an input mounted where it lies (zero-copy) is
not read then, so that staging a 5 GiB local file stays as fast as a 1 KiB one.
Its sha256 is taken here instead: after the executors for an ordinary attempt
(its staging time unchanged), before them for a rerun, whose inputs must be the
bytes the original read (``backend_parameters.inputs_sha256``).  A mounted input
is the user's own file, mounted read-only: reading it never follows a link.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from toolship.errors import StagingError
from toolship.storage.transfer import sha256_file
from toolship.worker.staging import StagedFile

__all__ = ["check_inputs", "hash_mounted"]


def hash_mounted(staged: Sequence[StagedFile]) -> list[StagedFile]:
    """The files of the mounted inputs in ``staged``, with their sha256 (files of a
    mounted folder one by one, by container path)."""
    found: list[StagedFile] = []
    for f in staged:
        if f.sha256 or not f.host:
            continue
        top = Path(f.host)
        if top.is_dir():
            for rel, path in _files(top):
                found.append(_hashed(posixpath.join(f.path, rel), f.url, path))
        else:
            found.append(_hashed(f.path, f.url, top))
    return found


def check_inputs(staged: Sequence[StagedFile], expected: Mapping[str, str]) -> list[StagedFile]:
    """Check every input file against ``expected`` (container path -> sha256 hex).

    Returns the mounted inputs' files, now hashed, for the attempt's record; raises
    :class:`StagingError` naming each file that changed, is missing or was not
    there before, so the attempt stops before any executor runs.
    """
    mounted = hash_mounted(staged)
    now = {f.path: f.sha256 for f in [*staged, *mounted] if f.sha256}
    problems = [
        f"{path} has sha256 {now[path]}, not {digest}" if path in now else f"{path} is missing"
        for path, digest in sorted(expected.items())
        if now.get(path) != digest
    ]
    problems += [
        f"{path} was not among the original's inputs"
        for path in sorted(now.keys() - expected.keys())
    ]
    if problems:
        raise StagingError(
            "the inputs are not the bytes the original task read, so no executor ran: "
            + "; ".join(problems)
            + " (restore them, or rerun with --allow-changed-inputs to run on the new bytes)"
        )
    return mounted


def _hashed(cpath: str, url: str, host: Path) -> StagedFile:
    found = host.stat()
    return StagedFile(cpath, url, found.st_size, _sha256(host, found), found.st_mtime_ns, str(host))


# The sha256 of files this process hashed, by what identifies their bytes: a sweep of a
# thousand tasks over one mounted 5 GiB reference reads it once, not a thousand times.
# Any write changes the ctime (which no user can set), so a changed file is read again.
_HASHED: dict[tuple[int, int, int, int, int], str] = {}
_HASHED_MAX = 100_000


def _sha256(host: Path, found: os.stat_result) -> str:
    key = (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)
    digest = _HASHED.get(key)
    if digest is None:
        digest = sha256_file(host)
        after = host.stat()
        if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == key[2:]:
            if len(_HASHED) >= _HASHED_MAX:
                _HASHED.clear()
            _HASHED[key] = digest  # unchanged while it was read
    return digest


def _files(top: Path) -> Iterator[tuple[str, Path]]:
    """Every regular file under ``top`` (relative path, host path); links are not followed."""
    for folder, dirs, names in os.walk(top, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder, name)
            if stat.S_ISREG(path.lstat().st_mode):
                yield path.relative_to(top).as_posix(), path
