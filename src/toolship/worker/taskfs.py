"""Every host-side access to a task's files: no link is followed, only regular files are read.

A task writes what it likes under its attempt's ``root/`` (through its mounts):
symbolic links to host files, FIFOs, links to devices.  The server must never
follow one — it is another user, often root — so a path below a directory the
server made is walked one component at a time with ``O_NOFOLLOW`` (what
``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`` does, on any Linux), its
last component is opened with ``O_PATH`` (which opens nothing: no FIFO blocks,
no device is touched) and reopened for reading only when it is a regular file,
and reads are bounded.  A file is written by renaming a new one over it, which
replaces a link and never writes through it.  A path that breaks these rules
raises :class:`TaskPathError` naming the container path and what was found.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from toolship.errors import StagingError

__all__ = [
    "Folder",
    "TaskPathError",
    "describe",
    "fresh_directory",
    "lstat_beneath",
    "open_file",
    "read_at",
    "read_tail",
    "regular_files",
    "remove",
    "replace_file",
]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_CHUNK = 1024 * 1024


class TaskPathError(StagingError):
    """A path the task controls is not a plain directory or regular file where one must be."""


def describe(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a regular file"


def _refuse(role: str, shown: str, what: str, component: str | None = None) -> TaskPathError:
    where = shown if component is None or component == shown else f"{shown}: {component}"
    return TaskPathError(
        f"{role} {where} is {what}; toolship never follows links and never reads FIFOs or "
        "devices that a task creates: make it a regular file (cp -L copies a link's target)"
    )


def _parts(rel: str) -> list[str]:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise TaskPathError(f"path {rel!r} leaves its directory ('..')")
    return parts


def _component(shown: str, parts: list[str], index: int, below: int) -> str:
    """The container path of ``parts[index]``, ``shown`` naming ``parts`` + ``below`` more."""
    shown_parts = shown.rstrip("/").split("/")
    cut = len(parts) - 1 - index + below
    if cut <= 0 or cut >= len(shown_parts):
        return shown
    return "/".join(shown_parts[:-cut]) or "/"


def _walk(
    base: Path,
    parts: list[str],
    role: str,
    shown: str,
    *,
    below: int = 1,
    create: bool = False,
    owner: tuple[int, int] | None = None,
) -> int:
    """An fd of the directory ``base/parts`` reached without following any link.

    ``base`` is a directory the server made, opened by name.  A missing component
    raises FileNotFoundError (or is created with ``create``); one that is not a
    directory raises TaskPathError.  ``shown`` names the path in messages: ``parts``
    and ``below`` more components (the file the caller opens next).
    """
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, name in enumerate(parts):
            where = _component(shown, parts, index, below)
            try:
                child = _open_dir_at(fd, name, role, shown, where)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, dir_fd=fd)
                child = _open_dir_at(fd, name, role, shown, where)
                _give(child, owner)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_dir_at(fd: int, name: str, role: str, shown: str, where: str) -> int:
    try:
        return os.open(name, _DIR, dir_fd=fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        found = os.stat(name, dir_fd=fd, follow_symlinks=False)
        raise _refuse(role, shown, describe(found.st_mode), where) from None


def lstat_beneath(base: Path, rel: str, role: str, shown: str) -> os.stat_result | None:
    """What is at ``base/rel`` (a link is not followed); None when nothing is."""
    parts = _parts(rel)
    if not parts:
        return base.stat()
    try:
        parent = _walk(base, parts[:-1], role, shown)
    except FileNotFoundError:
        return None
    try:
        return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    finally:
        os.close(parent)


def open_file(base: Path, rel: str, role: str, shown: str) -> int:
    """A read-only fd of the regular file ``base/rel``; FileNotFoundError when missing.

    The last component is opened with ``O_PATH`` first and reopened through
    ``/proc/self/fd`` once it is known to be a regular file: the very same inode,
    and a FIFO or a device is never opened.
    """
    parts = _parts(rel)
    if not parts:
        raise _refuse(role, shown, "a directory")
    parent = _walk(base, parts[:-1], role, shown)
    try:
        return _open_file_at(parent, parts[-1], role, shown)
    finally:
        os.close(parent)


def _open_file_at(parent: int, name: str, role: str, shown: str) -> int:
    handle = os.open(name, _PATH, dir_fd=parent)
    try:
        mode = os.fstat(handle).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse(role, shown, describe(mode))
        return os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(handle)


class Folder:
    """A directory the server made, held open and listed once; its files read by name.

    For reading many small files of one directory (the captures of thousands of
    executors): a name missing from the listing costs nothing, one present is
    opened as :func:`open_file` opens it.  Use it as a context manager.
    """

    def __init__(self, path: Path, role: str) -> None:
        self.path, self.role = path, role
        try:
            self._fd: int | None = os.open(path, _DIR)
        except FileNotFoundError:
            self._fd = None
        # listed by descriptor: the directory opened, not whatever now has its name
        listed = os.listdir(self._fd) if self._fd is not None else []  # noqa: PTH208
        self.names = frozenset(listed)

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read_at(self, name: str, offset: int, size: int, *, listed: bool = True) -> bytes:
        """At most ``size`` bytes from ``offset`` of the file ``name`` (b"" when missing).

        ``listed``: trust the listing made on opening (a file created since is missing).
        """
        folder = self._fd
        if folder is None or (listed and name not in self.names):
            return b""
        shown = str(self.path / name)
        return _read(lambda: _open_file_at(folder, name, self.role, shown), offset, size)


def _open_path(path: Path, role: str) -> int:
    return open_file(path.parent, path.name, role, str(path))


def read_tail(path: Path, limit: int, role: str = "log file") -> bytes:
    """The last ``limit`` bytes of a regular file (b"" when it does not exist)."""
    try:
        fd = _open_path(path, role)
    except FileNotFoundError:
        return b""
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, limit, max(0, size - limit))
    finally:
        os.close(fd)


def read_at(path: Path, offset: int, size: int, role: str = "log file") -> bytes:
    """At most ``size`` bytes from ``offset`` of a regular file (b"" when it does not exist)."""
    return _read(lambda: _open_path(path, role), offset, size)


def _read(opened: Callable[[], int], offset: int, size: int) -> bytes:
    """At most ``size`` bytes from ``offset`` of the file ``opened()`` opens (b"" when
    it does not exist)."""
    try:
        fd = opened()
    except FileNotFoundError:
        return b""
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def replace_file(
    base: Path,
    rel: str,
    source: Path,
    role: str,
    shown: str,
    owner: tuple[int, int] | None = None,
) -> None:
    """Make ``base/rel`` a copy of ``source`` (a file the server wrote), by rename.

    Missing directories on the way are created; what the task left at ``rel`` must
    be a regular file (or nothing): anything else is refused with its name, though
    the rename would only have replaced it.  A server running as root gives what it
    creates to ``owner`` (the task's user, so that later executors may change it).
    """
    parts = _parts(rel)
    if not parts:
        raise _refuse(role, shown, "a directory")
    parent = _walk(base, parts[:-1], role, shown, create=True, owner=owner)
    try:
        name = parts[-1]
        with contextlib.suppress(FileNotFoundError):
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
            if not stat.S_ISREG(mode):
                raise _refuse(role, shown, describe(mode))
        temp, out = _exclusive(parent, name)
        try:
            with os.fdopen(out, "wb") as fout:
                _give(out, owner)
                src = _open_path(source, "captured log")
                try:
                    _copy(src, fout.fileno())
                finally:
                    os.close(src)
            os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent)
            raise
    finally:
        os.close(parent)


def _give(fd: int, owner: tuple[int, int] | None) -> None:
    if owner is not None and os.geteuid() == 0 and owner != (0, 0):
        os.fchown(fd, *owner)


def _exclusive(parent: int, name: str) -> tuple[str, int]:
    """A new file beside ``name`` that nobody else made (never a link or a task's file)."""
    while True:
        temp = f".{name[:100]}.toolship-{secrets.token_hex(6)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with contextlib.suppress(FileExistsError):
            return temp, os.open(temp, flags, 0o644, dir_fd=parent)


def _copy(src: int, dst: int) -> None:
    while True:
        try:
            sent = os.copy_file_range(src, dst, 1 << 30)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            break
        if sent == 0:
            return
    while block := os.read(src, _COPY_CHUNK):  # another file system: copy by hand
        os.write(dst, block)


def regular_files(
    base: Path, rel: str, role: str, shown: str, *, directories: bool = False
) -> list[tuple[str, str]]:
    """``(path, kind)`` below the directory ``base/rel``, relative to it, sorted.

    ``kind`` is "" for a regular file, else what the entry is (a link, a FIFO…):
    the caller decides whether to skip it.  Directories are entered through
    their fds, never through a link; with ``directories`` each one is listed too
    (kind "a directory"), so that an empty one is seen.
    """
    top = _walk(base, _parts(rel), role, shown, below=0)
    found: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = [(top, "")]
    try:
        while stack:
            fd, prefix = stack.pop()
            try:
                with os.scandir(fd) as entries:
                    for entry in entries:
                        path = prefix + entry.name
                        mode = entry.stat(follow_symlinks=False).st_mode
                        if stat.S_ISDIR(mode):
                            with contextlib.suppress(OSError):  # gone, or swapped for a link
                                stack.append((os.open(entry.name, _DIR, dir_fd=fd), path + "/"))
                                if directories:
                                    found.append((path, describe(mode)))
                        else:
                            found.append((path, "" if stat.S_ISREG(mode) else describe(mode)))
            finally:
                os.close(fd)
    finally:
        for fd, _ in stack:
            os.close(fd)
    return sorted(found)


def remove(path: Path) -> None:
    """Remove whatever is at ``path`` (a tree, a file, a link: never what a link points to)."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(found.st_mode):
        shutil.rmtree(path)  # by descriptors, never through a link
    else:
        path.unlink()


def fresh_directory(path: Path) -> None:
    """Create ``path`` empty, removing first whatever was left there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        remove(path)
        path.mkdir()
