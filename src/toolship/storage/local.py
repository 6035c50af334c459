"""``file://`` URLs and plain absolute paths, limited to configured allowed roots.

Symlinks are resolved before the check, so a link inside an allowed root
cannot point a task at ``/etc/shadow``; toolship's own files (its home, config,
token and secret files) are refused even inside an allowed root.  The check
and the use never race: every path is opened again component by component
without following a symlink (a swap in between makes the open fail), and
what is mounted or copied is that open file, never its name.

Inputs are mounted in place (no copy): a server running as root bind-mounts
the opened file into the attempt's private ``mounts/`` directory and gives
the container that; a server that cannot mount gives the name itself when
no one else can change the path, and a copy otherwise.  An input inside a
folder where the operator lets tasks write inputs in place
(``local.writable_shared_dirs``) is bind-mounted read-write, by a root server
only (a name handed to the container engine could be swapped).  Outputs are written
to a temporary name beside the target and renamed, so a reader never sees a
half-written file, with the owner the operator configured (who also owns the
directories made for them, empty ones of a directory output included).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import errno
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from toolship.errors import InvalidRequest, StagingError
from toolship.storage.base import MissingInput, StageContext, split_pattern
from toolship.storage.transfer import FileRecord, copy_stream, partial_name, with_retries

__all__ = ["USER", "LocalStorage", "Pinned", "hand_over", "release_mounts"]

USER = "{user}"  # in an allowed root: the name of the task's owner ("/data/{user}")

CHUNK = 1024 * 1024
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class Pinned:
    """What a container mounts for a local input: a host path no one can swap."""

    host: Path
    size: int
    mtime_ns: int
    writable: bool = False  # it lies in a folder where inputs are mounted read-write


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


class LocalStorage:
    schemes: tuple[str, ...] = ("file",)

    def __init__(
        self,
        allowed_roots: Sequence[Path],
        *,
        excluded: Mapping[Path, str] | None = None,
        reader: tuple[int, int] | None = None,
        owner: tuple[int, int] | None = None,
        mount: bool = True,
    ) -> None:
        """``excluded``: toolship's own files, each with what it is ("toolship's own home").

        ``reader``: the uid:gid tasks run as (inputs it cannot read are copied for it);
        ``owner``: the uid:gid delivered outputs get (None: the server's own);
        ``mount``: False where the containers run on other machines too (a multi-node
        Slurm task), which would not see a mount made here.
        """
        # Roots naming {user} are each owner's own (for_owner); without an owner, none.
        self.templates = [str(r) for r in allowed_roots if USER in str(r)]
        self.roots = [Path(r).resolve() for r in allowed_roots if USER not in str(r)]
        self.excluded = {Path(p).resolve(): what for p, what in (excluded or {}).items()}
        self.reader = reader
        self.owner = owner
        self.mount = mount

    def for_owner(self, name: str | None) -> LocalStorage:
        """This storage as a task of ``name`` sees it: each root naming {user}, its own.

        A name that is not one path component (empty, ".", "..", with "/") gets none.
        """
        if not self.templates:
            return self
        scoped = copy.copy(self)
        safe = bool(name) and name not in (".", "..") and not {"/", "\x00"} & set(name or "")
        if safe and name is not None:
            own = [Path(t.replace(USER, name)).resolve() for t in self.templates]
            scoped.roots = [*self.roots, *own]
        return scoped

    # --- the check -----------------------------------------------------------

    def path_of(self, url: str) -> Path:
        """The resolved host path of ``url``, if it lies inside an allowed root."""
        if url.startswith("/"):
            raw = url
        else:
            parts = urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                raise InvalidRequest(
                    f"{url!r}: file:// URLs must name a local path (file:///path), "
                    f"not host {parts.netloc!r}"
                )
            if parts.query or parts.fragment:
                raise InvalidRequest(f"{url!r}: file:// URLs take no query or fragment")
            raw = unquote(parts.path)
        if not raw.startswith("/") or "\x00" in raw:
            raise InvalidRequest(f"{url!r}: file URLs need an absolute path")
        try:
            resolved = Path(raw).resolve()
        except OSError as exc:  # a symlink on the path vanished while it was being read
            raise InvalidRequest(
                f"{url!r} cannot be resolved ({exc.strerror}): it changed while it was being "
                "checked; try again once it stays put"
            ) from None
        self._check(url, resolved)
        return resolved

    def _check(self, url: str, resolved: Path) -> None:
        if not any(_inside(resolved, r) for r in self.roots):
            roots = ", ".join(str(r) for r in self.roots)
            raise InvalidRequest(
                f"{url!r} resolves to {resolved}, which is outside the allowed roots ({roots}); "
                "move the data under an allowed root or ask the operator to add one "
                "(storage.allowed_roots)"
            )
        for own, what in self.excluded.items():
            if _inside(resolved, own):
                raise InvalidRequest(
                    f"{url!r} resolves to {resolved}, which is inside {what} ({own}): tasks "
                    "may never read or write toolship's own files; use another directory"
                )

    def _holds_own(self, url: str, folder: Path) -> None:
        for own, what in self.excluded.items():
            if own.is_relative_to(folder):
                raise InvalidRequest(
                    f"{url!r} ({folder}) holds {what} ({own}), which tasks may never see; "
                    "name a directory that does not contain it"
                )

    def _allowed(self, path: Path) -> bool:
        try:
            self._check(str(path), path)
        except InvalidRequest:
            return False
        return True

    def check_input(self, url: str, kind: str) -> None:
        path = self.path_of(url)
        if kind == "DIRECTORY" or path.is_dir():
            self._holds_own(url, path)

    def check_output(self, url: str) -> None:
        self.path_of(url)

    def local_source(self, url: str) -> Path | None:
        return self._staged_path(url)

    def _staged_path(self, url: str) -> Path:
        """``path_of`` at staging time: the path changed since the task was accepted."""
        try:
            return self.path_of(url)
        except InvalidRequest as exc:
            raise StagingError(f"input {exc.message}") from None

    # --- opening what was checked --------------------------------------------

    def _open(self, url: str, path: Path) -> int:
        """An O_PATH descriptor of ``path`` reached without following any symlink.

        ``path`` is resolved (no symlink in it): a component that is a symlink now was
        swapped in after the check, and the open fails instead of following it.  The
        object's current name is checked once more (it may have been moved in).
        """
        fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in path.parts[1:]:
                flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
                try:
                    nxt = os.open(name, flags, dir_fd=fd)
                except FileNotFoundError:
                    raise MissingInput(url) from None
                os.close(fd)
                fd = nxt
                if stat.S_ISLNK(os.fstat(fd).st_mode):
                    raise StagingError(
                        f"{url}: {name} in its path became a symlink after the path was "
                        "checked; refusing to follow it"
                    )
            now = Path(f"/proc/self/fd/{fd}").readlink()
            try:
                self._check(url, now)
            except InvalidRequest as exc:
                raise StagingError(str(exc)) from None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def pin(self, url: str, kind: str, dest: Path, *, writable_in: Sequence[Path] = ()) -> Pinned:
        """Put the input ``url`` where a container can mount it from: ``dest`` or its path.

        As root: the opened file or directory is bind-mounted read-only at ``dest``.
        Otherwise the path itself serves when no one but this user (or root) can change
        any directory on it, and a copy at ``dest`` when someone can.  A file the task's
        user could not read is copied for it too.

        An object whose own path lies inside one of ``writable_in`` (resolved folders
        the tasks write anyway: ``local.writable_shared_dirs``) is bind-mounted
        read-write instead, never copied nor given by name: the task changes the original.
        """
        path = self._staged_path(url)
        fd = self._open(url, path)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                self._holds_own(url, path)
            elif not stat.S_ISREG(st.st_mode):
                raise StagingError(f"input {url} is not a regular file or a directory")
            # The object's name now, not the name checked: a link swapped in since counts
            # where it leads.  A deleted object's name ends in " (deleted)": inside nothing.
            where = Path(f"/proc/self/fd/{fd}").readlink()
            writable = any(_inside(where, folder) for folder in writable_in)
            pinned = Pinned(dest, st.st_size, st.st_mtime_ns, writable)
            if not writable and not self._readable(fd, st):
                self._copy_pinned(url, fd, st, dest)
                return pinned
            directory = stat.S_ISDIR(st.st_mode)
            if (
                self.mount
                and _make_mount_point(dest, directory)
                and _bind(fd, dest, readonly=not writable)
            ):
                return pinned
            if writable:
                raise StagingError(
                    f"input {url} lies in local.writable_shared_dirs, but only a server (or "
                    "Slurm worker) running as root, for a task on one machine, mounts an "
                    "input read-write: it mounts the "
                    "very directory it checked, where handing its name to the container "
                    "engine would let a task that writes the shared dir swap it for a link "
                    "to elsewhere; run the server as root, or remove the folder from "
                    "local.writable_shared_dirs (its inputs are then read-only)"
                )
            if _only_we_can_change(path):
                return Pinned(path, st.st_size, st.st_mtime_ns)
            self._copy_pinned(url, fd, st, dest)
            return pinned
        finally:
            os.close(fd)

    def _readable(self, fd: int, st: os.stat_result) -> bool:
        """Can the task's user read everything under ``fd`` through a read-only mount?"""
        if self.reader is None or self.reader[0] == 0:
            return True
        if not stat.S_ISDIR(st.st_mode):
            return _may_read(st, self.reader, directory=False)
        with _reopen(fd, os.O_RDONLY | os.O_DIRECTORY) as top:
            if not _may_read(st, self.reader, directory=True):
                return False
            for _dirpath, dirs, files, dirfd in os.fwalk(".", dir_fd=top):
                for name in (*dirs, *files):
                    entry = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                    if stat.S_ISLNK(entry.st_mode):
                        continue
                    if not _may_read(entry, self.reader, directory=stat.S_ISDIR(entry.st_mode)):
                        return False
        return True

    def _copy_pinned(self, url: str, fd: int, st: os.stat_result, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISDIR(st.st_mode):
            with _reopen(fd, os.O_RDONLY | os.O_DIRECTORY) as top:
                for _copied in self._copy_tree(top, dest, None):
                    pass
        else:
            with (
                _reopen(fd, os.O_RDONLY) as raw,
                os.fdopen(os.dup(raw), "rb") as fin,
                dest.open("wb") as fout,
            ):
                copy_stream(fin, fout)
        if self.reader is not None:
            hand_over(dest, self.reader)  # copies made for the task belong to its user

    def _copy_tree(
        self, top: int, dest: Path, ctx: StageContext | None
    ) -> Iterator[tuple[str, int, str]]:
        """Copy every regular file under the directory ``top``: (relative path, size, sha256).

        Nothing is followed: symlinks inside the tree are skipped, as are FIFOs and devices.
        """
        dest.mkdir(parents=True, exist_ok=True)
        for dirpath, dirs, files, dirfd in os.fwalk(".", dir_fd=top):
            rel_dir = os.path.normpath(dirpath)
            for name in sorted(dirs):
                (dest / rel_dir / name).mkdir(exist_ok=True)
            for name in sorted(files):
                try:
                    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
                except OSError:
                    continue  # a symlink (ELOOP) or gone
                with os.fdopen(src, "rb") as fin:
                    if not stat.S_ISREG(os.fstat(fin.fileno()).st_mode):
                        continue
                    rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                    with (dest / rel).open("wb") as fout:
                        digest = copy_stream(fin, fout)
                if ctx is not None:
                    ctx.progress.add(digest.size)
                yield rel, digest.size, digest.sha256

    # --- transfers ---------------------------------------------------------------

    def fetch(self, url: str, dest: Path, kind: str, ctx: StageContext) -> list[FileRecord]:
        src = self._staged_path(url)
        fd = self._open(url, src)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                self._holds_own(url, src)
                with _reopen(fd, os.O_RDONLY | os.O_DIRECTORY) as top:
                    return [
                        FileRecord(url=f"file://{src / rel}", path=rel, size=size, sha256=sha)
                        for rel, size, sha in self._copy_tree(top, dest, ctx)
                    ]
            if not stat.S_ISREG(st.st_mode):
                raise StagingError(f"input {url} is not a regular file or a directory")
            dest.parent.mkdir(parents=True, exist_ok=True)

            def attempt() -> tuple[int, str]:
                with (
                    _reopen(fd, os.O_RDONLY) as raw,
                    os.fdopen(os.dup(raw), "rb") as fin,
                    dest.open("wb") as fout,
                ):
                    digest = copy_stream(fin, fout)
                return digest.size, digest.sha256

            size, sha = with_retries(attempt, f"copy {src}", ctx.attempts)
        finally:
            os.close(fd)
        ctx.progress.add(size)
        return [FileRecord(url=url, path="", size=size, sha256=sha)]

    def deliver(self, src: Path, url: str, ctx: StageContext) -> FileRecord:
        try:
            dest = self.path_of(url)
        except InvalidRequest as exc:
            raise StagingError(f"cannot write {url}: {exc}") from None
        tmp = partial_name(dest)
        parent = -1
        try:
            parent = self._folder(url, dest.parent)
            out = os.open(
                tmp.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                dir_fd=parent,
            )  # fmt: skip
            with src.open("rb") as fin, os.fdopen(out, "wb") as fout:
                digest = copy_stream(fin, fout)
                if self.owner is not None:
                    os.fchown(fout.fileno(), *self.owner)
            os.replace(tmp.name, dest.name, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as exc:
            if parent >= 0:
                with contextlib.suppress(OSError):
                    os.unlink(tmp.name, dir_fd=parent)
            raise StagingError(f"cannot write {url}: {exc.strerror or exc}") from exc
        finally:
            if parent >= 0:
                os.close(parent)
        ctx.progress.add(digest.size)
        return FileRecord(url=url, path="", size=digest.size, sha256=digest.sha256)

    def deliver_directory(self, url: str, ctx: StageContext) -> bool:
        try:
            dest = self.path_of(url)
        except InvalidRequest as exc:
            raise StagingError(f"cannot create {url}: {exc}") from None
        try:
            os.close(self._folder(url, dest))
        except OSError as exc:
            raise StagingError(f"cannot create {url}: {exc.strerror or exc}") from exc
        return True

    def _folder(self, url: str, folder: Path) -> int:
        """A descriptor of ``folder``, created as needed, reached without following symlinks."""
        fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in folder.parts[1:]:
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                try:
                    nxt = os.open(name, flags, dir_fd=fd)
                except FileNotFoundError:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=fd)
                        if self.owner is not None:
                            os.chown(name, *self.owner, dir_fd=fd, follow_symlinks=False)
                    nxt = os.open(name, flags, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise StagingError(
                            f"cannot write {url}: {name} in its path is not a directory "
                            "(or became a symlink); refusing to follow it"
                        ) from None
                    raise
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    def glob(self, pattern: str, credentials: Mapping[str, str]) -> list[str]:
        raw = pattern[len("file://") :] if pattern.startswith("file://") else pattern
        folder, rest = split_pattern(raw)
        base = self.path_of("file://" + (folder or "/"))
        if not rest or rest.startswith("/") or ".." in rest.split("/"):
            raise InvalidRequest(f"{pattern!r}: give a pattern below a folder, e.g. /data/*.csv")
        return sorted(
            f"file://{p}" for p in base.glob(rest) if p.is_file() and self._allowed(p.resolve())
        )

    def prefixes(self) -> list[str]:
        return [f"file://{r}/" if str(r) != "/" else "file:///" for r in self.roots]


@contextlib.contextmanager
def _reopen(fd: int, flags: int) -> Iterator[int]:
    """Open the very object an O_PATH descriptor holds, for reading."""
    new = os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)
    try:
        yield new
    finally:
        os.close(new)


def _may_read(st: os.stat_result, user: tuple[int, int], *, directory: bool) -> bool:
    need = 0o5 if directory else 0o4
    if st.st_uid == user[0]:
        bits = st.st_mode >> 6
    elif st.st_gid == user[1]:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & need == need


def _only_we_can_change(path: Path) -> bool:
    """No directory on ``path`` lets anyone but this user (or root) swap what follows it."""
    me = os.geteuid()
    for parent, child in zip(path.parents, [path, *path.parents][:-1], strict=False):
        pst = parent.lstat()
        others_write = pst.st_uid not in (0, me) or pst.st_mode & 0o022
        if not others_write:
            continue
        sticky = pst.st_mode & stat.S_ISVTX
        cst = child.lstat()
        if not sticky or cst.st_uid not in (0, me):
            return False
    return True


def _make_mount_point(dest: Path, directory: bool) -> bool:
    if os.geteuid() != 0:
        return False
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory:
        dest.mkdir(exist_ok=True)
    else:
        dest.touch(exist_ok=True)
    return True


def _bind(fd: int, dest: Path, *, readonly: bool = True) -> bool:
    """Bind-mount the object ``fd`` holds at ``dest`` (read-only); False if not permitted."""
    source = f"/proc/self/fd/{fd}".encode()
    target = os.fsencode(dest)
    if _libc.mount(source, target, None, MS_BIND, None) != 0:
        code = ctypes.get_errno()
        if code in (errno.EPERM, errno.EACCES):
            return False
        raise StagingError(f"cannot mount an input at {dest}: {os.strerror(code)}")
    if not readonly:
        return True
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY
    if _libc.mount(None, target, None, flags, None) != 0:
        code = ctypes.get_errno()
        _libc.umount2(target, MNT_DETACH)
        raise StagingError(f"cannot make the input mount {dest} read-only: {os.strerror(code)}")
    return True


def _mount_points() -> list[Path]:
    points = []
    with Path("/proc/self/mountinfo").open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            field = line.split()[4]
            points.append(Path(field.encode().decode("unicode_escape")))
    return points


def release_mounts(attempt_dir: Path) -> None:
    """Unmount the inputs pinned for one attempt (containers keep their own copy of a mount)."""
    mounts = attempt_dir / "mounts"
    if not mounts.is_dir():
        return
    for point in reversed(_mount_points()):
        if point.is_relative_to(mounts):
            _libc.umount2(os.fsencode(point), MNT_DETACH)


def hand_over(folder: Path, owner: tuple[int, int]) -> None:
    """Give ``folder`` (or a file) and everything in it to ``owner`` (a root server only).

    Walked through directory descriptors and never following a symlink, so a tree that
    a task can change cannot send the ownership of a host file anywhere.
    """
    if os.geteuid() != 0 or owner == (0, 0):
        return
    os.chown(folder, *owner, follow_symlinks=False)
    for _dirpath, dirs, files, dirfd in os.fwalk(folder):
        for name in (*dirs, *files):
            with contextlib.suppress(FileNotFoundError):
                os.chown(name, *owner, dir_fd=dirfd, follow_symlinks=False)
