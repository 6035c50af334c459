"""An uploaded build context (a tar, gzip allowed) unpacked safely on the server.

The tar comes from whoever may build: nothing in it may reach outside the folder it is
unpacked into, nor fill the disk.  Members are written one by one by this code, never by
``tarfile.extract``: absolute names, ``..``, devices, FIFOs and anything but files,
folders and links are refused; no member is written through a symbolic link; a hard
link is a copy of a file unpacked before it; a symbolic link stays a link but must
point inside the context once everything is unpacked (podman reads the context in a
chroot of its own as well).  Owners are dropped and modes keep only the permission bits
without setuid, setgid or sticky.  Any refusal removes what was unpacked.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from toolship.errors import InvalidRequest

__all__ = ["MAX_CONTEXT_BYTES", "MAX_CONTEXT_FILES", "unpack_context"]

MAX_CONTEXT_BYTES = 2 << 30  # what the files of one context may add up to, unpacked
MAX_CONTEXT_FILES = 100_000
_CHUNK = 1 << 20


def unpack_context(
    source: bytes | BinaryIO | Path,
    dest: Path,
    *,
    max_bytes: int = MAX_CONTEXT_BYTES,
    max_files: int = MAX_CONTEXT_FILES,
) -> Path:
    """Unpack the tar ``source`` into ``dest`` (created; it must not exist) and return it.

    Raises ``InvalidRequest`` naming the member and the rule it breaks (and how to make a
    context that passes) when the tar is unreadable, a member's name or link leaves the
    context, a member is not a file, folder or link, or the context is over ``max_bytes``
    or ``max_files``.
    """
    dest.mkdir(mode=0o755)
    try:
        if isinstance(source, Path):
            with source.open("rb") as f:
                _unpack(f, dest, max_bytes, max_files)
        elif isinstance(source, bytes):
            _unpack(io.BytesIO(source), dest, max_bytes, max_files)
        else:
            _unpack(source, dest, max_bytes, max_files)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def _refuse(name: str, why: str) -> InvalidRequest:
    return InvalidRequest(
        f"build context: member {name!r} {why}; pack the build folder itself (toolship "
        "service build DIR does), with only files, folders and links that stay inside it"
    )


def _member_name(member: tarfile.TarInfo) -> str:
    path = PurePosixPath(member.name)
    if path.is_absolute() or member.name.startswith("/"):
        raise _refuse(member.name, "has an absolute path")
    parts = [p for p in path.parts if p != "."]
    if ".." in parts:
        raise _refuse(member.name, "has '..' in its path")
    if any("\x00" in p for p in parts):
        raise _refuse(member.name, "has a NUL character in its name")
    return "/".join(parts)


def _unpack(stream: BinaryIO, dest: Path, max_bytes: int, max_files: int) -> None:
    try:
        archive = tarfile.open(fileobj=stream, mode="r|*")  # noqa: SIM115 (closed below)
    except tarfile.TarError as exc:
        raise InvalidRequest(
            f"build context: not a tar archive ({exc}); send the folder as a tar or tar.gz"
        ) from exc
    unpacker = _Unpacker(archive, dest, max_bytes)
    try:
        for count, member in enumerate(archive, start=1):
            if count > max_files:
                raise InvalidRequest(
                    f"build context: more than {max_files} members; leave what the build "
                    "does not need out (.containerignore)"
                )
            unpacker.add(member)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidRequest(
            f"build context: the tar archive is damaged or truncated ({exc}); send it again"
        ) from exc
    finally:
        archive.close()
    _links_stay_inside(dest, unpacker.links)


class _Unpacker:
    def __init__(self, archive: tarfile.TarFile, dest: Path, max_bytes: int) -> None:
        self.archive, self.dest, self.max_bytes = archive, dest, max_bytes
        self.links: set[str] = set()  # symbolic links unpacked so far
        self.files: set[str] = set()  # regular files unpacked so far
        self.total = 0

    def add(self, member: tarfile.TarInfo) -> None:
        name = _member_name(member)
        if not name:
            return  # the context's own folder ("./")
        for parent in PurePosixPath(name).parents:
            if str(parent) in self.links or str(parent) in self.files:
                raise _refuse(name, f"lies under {str(parent)!r}, which is not a folder")
        if name in self.links:
            raise _refuse(name, "replaces a symbolic link unpacked before it")
        target = self.dest / name
        if member.isdir():
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
            return
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if member.issym():
            _symlink(member, name, target)
            self.links.add(name)
        elif member.islnk():
            self._hard_link(member, name, target)
        elif member.isreg():
            self._count(member.size)
            _write(self.archive, member, target)
            self.files.add(name)
        else:
            raise _refuse(name, "is not a file, folder or link (devices, FIFOs and "
                                "sockets are refused)")  # fmt: skip

    def _hard_link(self, member: tarfile.TarInfo, name: str, target: Path) -> None:
        origin = _member_name(tarfile.TarInfo(member.linkname))
        if origin not in self.files:
            raise _refuse(name, f"is a hard link to {member.linkname!r}, not to a file "
                                "unpacked before it")  # fmt: skip
        source = self.dest / origin
        self._count(source.stat().st_size)
        _remove(target)
        shutil.copyfile(source, target, follow_symlinks=False)
        target.chmod(source.stat().st_mode & 0o777)
        self.files.add(name)

    def _count(self, size: int) -> None:
        self.total += size
        if self.total > self.max_bytes:
            raise InvalidRequest(
                f"build context: more than {self.max_bytes} bytes unpacked; leave what the "
                "build does not need out (.containerignore)"
            )


def _remove(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        raise InvalidRequest(
            f"build context: {target.name!r} is both a folder and a file; pack the folder again"
        )
    target.unlink(missing_ok=True)


def _write(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    data = archive.extractfile(member)
    if data is None:  # pragma: no cover - isreg() members always have data
        raise _refuse(member.name, "has no data")
    _remove(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(target, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        left = member.size
        while left > 0:
            chunk = data.read(min(_CHUNK, left))
            if not chunk:
                raise EOFError(f"{member.name} ends early")
            out.write(chunk)
            left -= len(chunk)
    target.chmod(0o755 if member.mode & 0o111 else 0o644)


def _symlink(member: tarfile.TarInfo, name: str, target: Path) -> None:
    link = member.linkname
    if not link or link.startswith("/"):
        raise _refuse(name, f"is a symbolic link to an absolute path ({link!r})")
    inside = os.path.normpath(PurePosixPath(name).parent / link)
    if inside == ".." or inside.startswith("../"):
        raise _refuse(name, f"is a symbolic link out of the context ({link!r})")
    _remove(target)
    target.symlink_to(link)


def _links_stay_inside(dest: Path, links: set[str]) -> None:
    """Every link, resolved with all the others in place, ends inside ``dest``."""
    root = dest.resolve()
    for name in sorted(links):
        resolved = Path(os.path.realpath(dest / name))
        if resolved != root and not resolved.is_relative_to(root):
            raise _refuse(name, "is a symbolic link that leads out of the context")
