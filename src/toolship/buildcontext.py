"""A build folder packed for upload (``toolship service build``): a gzipped tar.

What podman would leave out of the context, the upload leaves out too: the patterns of
``.containerignore`` (else ``.dockerignore``) at the folder's top, read as Docker reads
them — ``#`` comments, ``*`` ``?`` ``[…]`` within one path segment, ``**`` across
segments, a pattern that matches a folder leaves out everything in it, ``!`` takes a path
back in, and the last pattern that matches decides.  The Containerfile and the ignore
file itself are always sent (Docker does the same: the build needs them).  Regular files,
folders and symbolic links are packed (links as links: the server refuses any that point
out of the context); sockets, FIFOs and devices are skipped.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from toolship.errors import InvalidRequest

__all__ = ["IGNORE_FILES", "Packed", "Patterns", "containerfile_of", "pack"]

IGNORE_FILES = (".containerignore", ".dockerignore")
CONTAINERFILES = ("Containerfile", "Dockerfile")
_MEMORY = 16 << 20  # a context up to this size is packed in memory, a larger one on disk


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exception: bool


class Patterns:
    """The exclusion patterns of an ignore file."""

    def __init__(self, lines: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            if exception:
                line = line[1:].strip()
            cleaned = os.path.normpath(line).lstrip("/")
            if cleaned in ("", "."):
                continue
            self.patterns.append(_Pattern(_regex(cleaned), exception))

    @classmethod
    def of(cls, folder: Path) -> tuple[Patterns, str | None]:
        """The folder's ignore patterns and the file they came from (None: no file)."""
        for name in IGNORE_FILES:
            path = folder / name
            if path.is_file():
                return cls(path.read_text(errors="replace").splitlines()), name
        return cls([]), None

    @property
    def has_exceptions(self) -> bool:
        return any(p.exception for p in self.patterns)

    def excludes(self, relative: str) -> bool:
        """Whether this path (relative, with ``/``) is left out: by the last pattern that
        matches it or one of its parent folders."""
        parts = relative.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for pattern in self.patterns:
            if any(pattern.regex.match(c) for c in candidates):
                excluded = not pattern.exception
        return excluded


def _regex(pattern: str) -> re.Pattern[str]:
    """Docker's translation of a pattern (moby/patternmatcher) into a regular expression."""
    out = "^"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                out += ".*" if i + 1 >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out += re.escape(ch)
            else:
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
                i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


def containerfile_of(folder: Path, file: str | None) -> str:
    """The Containerfile's path inside ``folder`` (``file``, else Containerfile, else
    Dockerfile), checked here so that a missing one is said before anything is sent."""
    if not folder.is_dir():
        raise InvalidRequest(f"{folder} is not a folder: give the folder to build from")
    if file is None:
        for name in CONTAINERFILES:
            if (folder / name).is_file():
                return name
        raise InvalidRequest(
            f"{folder} has neither a Containerfile nor a Dockerfile: write one there, "
            "or name it with --file"
        )
    given = Path(file)
    path = given if given.is_absolute() else folder / given
    try:
        relative = path.resolve().relative_to(folder.resolve())
    except ValueError:
        raise InvalidRequest(
            f"--file {file}: the Containerfile must be inside the folder {folder} "
            "(only the folder is sent to the server)"
        ) from None
    if not path.is_file():
        raise InvalidRequest(f"--file {file}: there is no such file in {folder}")
    return relative.as_posix()


@dataclass
class Packed:
    """The packed context: a gzipped tar to upload, and what went into it."""

    archive: IO[bytes]
    containerfile: str
    files: int
    bytes: int  # of the files packed
    sent: int  # of the archive
    ignore_file: str | None
    left_out: int
    skipped: list[str]  # sockets, FIFOs, devices

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> Packed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pack(folder: Path, file: str | None = None) -> Packed:
    """Pack ``folder`` as the build context, leaving out what its ignore file says."""
    folder = folder.expanduser()
    containerfile = containerfile_of(folder, file)
    patterns, ignore_file = Patterns.of(folder)
    keep = {containerfile, *([ignore_file] if ignore_file else [])}
    archive = tempfile.SpooledTemporaryFile(max_size=_MEMORY)  # noqa: SIM115 (Packed closes it)
    files = size = left_out = 0
    skipped: list[str] = []
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for top, dirs, names in os.walk(folder):
            dirs.sort()
            base = Path(top).relative_to(folder)
            for name in sorted(names) + [d for d in dirs if (Path(top) / d).is_symlink()]:
                relative = (base / name).as_posix()
                if relative not in keep and patterns.excludes(relative):
                    left_out += 1
                    continue
                mode = (Path(top) / name).lstat().st_mode
                if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                    skipped.append(relative)
                    continue
                tar.add(Path(top) / name, arcname=relative, recursive=False, filter=_anonymous)
                files += 1
                size += (Path(top) / name).lstat().st_size if stat.S_ISREG(mode) else 0
            for d in list(dirs):
                relative = (base / d).as_posix()
                path = Path(top) / d
                excluded = patterns.excludes(relative)
                if path.is_symlink():
                    dirs.remove(d)  # packed above, as a link; not followed
                elif excluded and not (
                    patterns.has_exceptions or any(k.startswith(relative + "/") for k in keep)
                ):
                    dirs.remove(d)
                    left_out += 1
                elif not excluded:  # an excluded one is walked for what is taken back
                    tar.add(path, arcname=relative, recursive=False, filter=_anonymous)
    sent = archive.tell()
    archive.seek(0)
    return Packed(archive, containerfile, files, size, sent, ignore_file, left_out, skipped)


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owned by root in the archive, as Docker's client sends it: this machine's user
    names and ids mean nothing on the server."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
