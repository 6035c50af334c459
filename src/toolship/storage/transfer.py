"""Byte moving shared by every scheme: one pass that copies, hashes and counts; retries.

Every staged byte is hashed once, while it streams (sha256 for provenance, md5 only to
compare with an object store's plain ETag) — never in a second pass over the file.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from toolship.storage.egress import refusal_in

__all__ = [
    "CHUNK",
    "FileRecord",
    "StreamDigest",
    "copy_stream",
    "sha256_file",
    "with_retries",
]

log = logging.getLogger(__name__)
CHUNK = 8 * 1024 * 1024
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


def copy_stream(
    src: BinaryIO, dst: BinaryIO, *, md5: bool = False, chunk: int = CHUNK
) -> StreamDigest:
    sha = hashlib.sha256()
    md = hashlib.md5(usedforsecurity=False) if md5 else None
    size = 0
    while True:
        block = src.read(chunk)
        if not block:
            break
        sha.update(block)
        if md is not None:
            md.update(block)
        dst.write(block)
        size += len(block)
    return StreamDigest(size=size, sha256=sha.hexdigest(), md5=md.hexdigest() if md else "")


def sha256_file(path: Path, chunk: int = CHUNK) -> str:
    """sha256 of a file, reading into one reused buffer (hashlib releases the GIL)."""
    sha = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with path.open("rb") as fh:
        while n := fh.readinto(buf):
            sha.update(view[:n])
    return sha.hexdigest()


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
