"""Byte moving shared by every scheme: one pass that copies, hashes and counts; retries.

Every staged byte is hashed once, while it streams (sha256 for provenance, md5 only to
compare with an object store's plain ETag) — never in a second pass over the file.  A
large object is read as concurrent byte ranges (:func:`ranged_copy`), still hashed in
order in that one pass.  What is written goes to a temporary name beside its target
(:func:`partial_name`), is checked against the size and ETag the store gave
(:func:`verify`) and only then renamed into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypedDict, TypeVar

from toolship.errors import StagingError
from toolship.storage.egress import refusal_in

__all__ = [
    "CHUNK",
    "RANGE_WORKERS",
    "FileRecord",
    "Hasher",
    "ObjectInfo",
    "Sink",
    "StreamDigest",
    "copy_stream",
    "partial_name",
    "plain_etag",
    "ranged_copy",
    "sha256_file",
    "verify",
    "with_retries",
]

log = logging.getLogger(__name__)
_PLAIN_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')
CHUNK = 8 * 1024 * 1024
RANGE_SIZE = 16 * 1024 * 1024  # at most; smaller objects are split into RANGE_WORKERS parts
RANGE_MIN_PART = 2 * 1024 * 1024
RANGE_WORKERS = 8
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One file that was staged: where it was (URL), where it went (path), what it was."""

    url: str
    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class StreamDigest:
    size: int
    sha256: str
    md5: str


class ObjectInfo(TypedDict, total=False):
    """The fields of an fsspec ``info()`` / ``find(detail=True)`` entry that staging reads."""

    name: str
    type: str  # "file" or "directory"
    size: int | None  # None where a web server does not say
    ETag: str  # S3
    etag: str  # others


class Sink(Protocol):
    """Where copied bytes go: a local file, or a store's upload."""

    def write(self, data: bytes, /) -> object: ...


class Hasher:
    """sha256 (and md5 when asked) and the size of the bytes it is given, in order."""

    def __init__(self, *, md5: bool = False) -> None:
        self._sha = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self.size = 0

    def update(self, block: bytes) -> None:
        self._sha.update(block)
        if self._md5 is not None:
            self._md5.update(block)
        self.size += len(block)

    def digest(self) -> StreamDigest:
        md5 = self._md5.hexdigest() if self._md5 is not None else ""
        return StreamDigest(size=self.size, sha256=self._sha.hexdigest(), md5=md5)


def copy_stream(src: BinaryIO, dst: Sink, *, md5: bool = False, chunk: int = CHUNK) -> StreamDigest:
    hasher = Hasher(md5=md5)
    while block := src.read(chunk):
        hasher.update(block)
        dst.write(block)
    return hasher.digest()


def _part_size(size: int) -> int:
    """Ranges of RANGE_SIZE, or fewer bytes so that even a mid-sized object gets every worker."""
    per_worker = -(-size // RANGE_WORKERS)
    return max(RANGE_MIN_PART, min(RANGE_SIZE, per_worker))


def ranged_copy(
    read: Callable[[str, int, int], bytes], path: str, size: int, dst: Sink, *, md5: bool
) -> StreamDigest:
    """Fetch ``size`` bytes as concurrent ranges (``read(path, start, end)``).

    They are hashed and written in order; at most RANGE_WORKERS + 1 ranges are held
    in memory at once.  The digest counts the bytes that came, so a short range
    shows as a size that differs from the store's.
    """
    hasher = Hasher(md5=md5)
    part = _part_size(size)
    with ThreadPoolExecutor(RANGE_WORKERS) as pool:
        window: list[Future[bytes]] = []
        for start in range(0, size, part):
            window.append(pool.submit(read, path, start, min(start + part, size)))
            if len(window) > RANGE_WORKERS:
                block = window.pop(0).result()
                hasher.update(block)
                dst.write(block)
        for job in window:
            block = job.result()
            hasher.update(block)
            dst.write(block)
    return hasher.digest()


def sha256_file(path: Path, chunk: int = CHUNK) -> str:
    """sha256 of a file, reading into one reused buffer (hashlib releases the GIL)."""
    sha = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with path.open("rb") as fh:
        while n := fh.readinto(buf):
            sha.update(view[:n])
    return sha.hexdigest()


def partial_name(dest: Path) -> Path:
    """A temporary name beside ``dest``, unique to this writer (process and thread)."""
    return dest.parent / f".{dest.name}.toolship-partial-{os.getpid()}-{threading.get_ident()}"


def verify(path: str, info: ObjectInfo, digest: StreamDigest) -> None:
    """Raise StagingError unless what came matches what the store says it holds."""
    size = info.get("size")
    if isinstance(size, int) and size != digest.size:
        raise StagingError(f"{path}: got {digest.size} bytes, the store says {size}")
    plain = plain_etag(info)
    if plain and digest.md5 and plain != digest.md5:
        raise StagingError(f"{path}: content does not match the store's ETag {plain}")


def plain_etag(info: ObjectInfo) -> str | None:
    """The object's MD5 when its ETag is one (not for multipart uploads: no MD5 to check)."""
    plain = _PLAIN_ETAG.match(str(info.get("ETag") or info.get("etag") or ""))
    return plain.group(1) if plain else None


def _transient(exc: BaseException) -> bool:
    """Worth another try: network trouble, not a missing file or a refusal."""
    if refusal_in(exc) is not None:
        return False
    if isinstance(
        exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError
    ):
        return False
    return isinstance(exc, OSError | ConnectionError | TimeoutError) or type(
        exc
    ).__module__.startswith(("botocore", "aiobotocore", "aiohttp", "httpx"))


def with_retries(action: Callable[[], T], what: str, attempts: int, backoff: float = 0.5) -> T:
    """Run ``action``; retry transient failures with exponential back-off."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == attempts or not _transient(exc):
                raise
            delay = backoff * 2 ** (attempt - 1)
            log.warning("%s failed (%s); retry %d/%d in %.1fs", what, exc, attempt, attempts, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
