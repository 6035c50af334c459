"""The transfer engine every non-local scheme plugs into: :class:`RemoteStorage` over fsspec.

A scheme (``s3.py``, ``http.py``, ``webdav.py``, ``cloud.py``) says how to build its
filesystem, which credentials a URL gets and how URLs map to paths; this module
moves the bytes.

Downloads stream into a temporary file beside the destination while hashing, are
checked against the store's size (and plain-MD5 ETag where it has one) and only
then renamed into place; objects bigger than one chunk are fetched as concurrent
byte ranges.  The small files of a directory are fetched many at once on the
filesystem's own event loop (asynchronous filesystems: S3, HTTP), not one thread
and one request at a time: for small objects the round trip is the cost.
Uploads stream through the filesystem's writer (multipart on S3) and are
discarded — never completed — when anything fails, so no partial object
appears at the final key.  An empty directory is made where the store has
directories (WebDAV) or a marker for them (S3's zero-byte ``name/`` object,
which a directory input turns back into a directory); elsewhere it is not kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import threading
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from toolship.errors import InvalidRequest, StagingError
from toolship.storage.base import MissingInput, StageContext, redact
from toolship.storage.egress import EgressPolicy, refusal_in
from toolship.storage.settings import StorageSettings
from toolship.storage.transfer import (
    CHUNK,
    FileRecord,
    ObjectInfo,
    StreamDigest,
    copy_stream,
    partial_name,
    plain_etag,
    ranged_copy,
    verify,
    with_retries,
)

if TYPE_CHECKING:
    # fsspec loads with the first remote URL, not with every worker.
    from fsspec import AbstractFileSystem

__all__ = ["RemoteStorage", "Upload"]

RANGED_MIN = CHUNK + 1  # objects bigger than one GET's worth are fetched as parallel ranges
SMALL = 1024 * 1024  # files up to this size are fetched in bulk
BULK_FILES = 256  # per bulk round (bounds the bytes held in memory: BULK_FILES * SMALL)
UPLOAD_BLOCK = max(CHUNK, 5 * 1024 * 1024)  # S3's smallest multipart part is 5 MiB


class Upload(Protocol):
    """A store's writer: bytes in, then ``close`` (the object appears) or ``discard`` (never)."""

    def write(self, data: bytes, /) -> int: ...

    def close(self) -> None: ...

    def discard(self) -> None: ...


class RemoteStorage:
    """A writable or read-only fsspec filesystem behind one or more URL schemes."""

    schemes: tuple[str, ...] = ()
    writable = True
    # The URLs name the host to connect to (not a bucket at the operator's endpoint):
    # the egress policy applies.
    names_hosts = False
    # An optional extra: (the module it needs, the extra that installs it).
    extra: tuple[str, str] | None = None

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.egress = EgressPolicy.of(settings.egress.allow)
        self._filesystems: dict[Hashable, AbstractFileSystem] = {}
        self._lock = threading.Lock()

    # --- what a scheme says ------------------------------------------------------

    def make_filesystem(self, url: str, credentials: Mapping[str, str]) -> AbstractFileSystem:
        raise NotImplementedError

    def fs_key(self, url: str, credentials: Mapping[str, str]) -> Hashable:
        """What tells filesystems apart: the URLs of one key share one filesystem."""
        return tuple(sorted(credentials.items()))

    def scoped(self, url: str, credentials: Mapping[str, str]) -> Mapping[str, str]:
        """The credentials to use for ``url``: the task's own, else the server's for its prefix."""
        return credentials

    def path(self, url: str) -> str:
        """The filesystem path of ``url``."""
        parts = urlsplit(url)
        return f"{parts.netloc}{parts.path}".rstrip("/")

    def url_of(self, url: str, path: str) -> str:
        scheme = urlsplit(url).scheme
        return f"{scheme}://{path}"

    def prepare_parent(self, fs: AbstractFileSystem, path: str) -> None:
        """Make the parent of ``path`` exist where the store has real directories."""

    def make_directory(
        self, fs: AbstractFileSystem, path: str, credentials: Mapping[str, str]
    ) -> bool:
        """Make the directory ``path``; False where the store keeps no empty directories.

        Object stores have no directories, and fsspec drops a trailing slash, so by
        default nothing is made: a scheme that has directories, or a marker for them,
        says how.
        """
        return False

    def range_reader(
        self, fs: AbstractFileSystem, credentials: Mapping[str, str]
    ) -> Callable[[str, int, int], bytes]:
        """``read(path, start, end)`` for the parallel ranges of a large object."""

        def read(path: str, start: int, end: int) -> bytes:
            data: bytes = fs.cat_file(path, start=start, end=end)
            return data

        return read

    def writer_class(self) -> type[Upload]:
        """The class of the filesystem's writers: one that can be discarded, not completed.

        fsspec's buffered writer (S3, GCS, Azure) unless the scheme says otherwise.
        """
        from fsspec.spec import AbstractBufferedFile

        buffered: type[Upload] = AbstractBufferedFile
        return buffered

    # --- Storage -------------------------------------------------------------------

    def filesystem(self, url: str, credentials: Mapping[str, str]) -> AbstractFileSystem:
        key = self.fs_key(url, credentials)
        with self._lock:
            fs = self._filesystems.get(key)
            if fs is None:
                fs = self._filesystems[key] = self.make_filesystem(url, credentials)
            return fs

    def check_input(self, url: str, kind: str) -> None:
        if not self.path(url):
            raise InvalidRequest(f"{url!r} names no bucket, host or path")
        self.check_egress(url)

    def check_egress(self, url: str) -> None:
        if not self.names_hosts:
            return
        try:
            self.egress.check_url(url)
        except OSError as exc:
            raise InvalidRequest(f"{redact(url)}: {exc}") from None

    def check_output(self, url: str) -> None:
        if not self.writable:
            raise InvalidRequest(
                f"{url!r}: {urlsplit(url).scheme}:// is read-only here; deliver outputs to "
                "s3://, webdav:// or file:// instead"
            )
        self.check_input(url, "FILE")

    def local_source(self, url: str) -> Path | None:
        return None

    def prefixes(self) -> list[str]:
        return [f"{s}://" for s in self.schemes]

    def glob(self, pattern: str, credentials: Mapping[str, str]) -> list[str]:
        fs = self.filesystem(pattern, self.scoped(pattern, credentials))
        path = self.path(pattern)
        try:
            found: dict[str, ObjectInfo] = fs.glob(path, detail=True)
        except Exception as exc:
            raise InvalidRequest(f"cannot list {redact(pattern)}: {_message(exc)}") from exc
        return sorted(
            self.url_of(pattern, name) for name, info in found.items() if info.get("type") == "file"
        )

    def fetch(self, url: str, dest: Path, kind: str, ctx: StageContext) -> list[FileRecord]:
        ctx = dataclasses.replace(ctx, credentials=self.scoped(url, ctx.credentials))
        fs = self.filesystem(url, ctx.credentials)
        root = self.path(url)
        try:
            if kind == "DIRECTORY":
                return self._fetch_tree(fs, url, root, dest, ctx)
            info: ObjectInfo = with_retries(
                lambda: fs.info(root), f"stat {redact(url)}", ctx.attempts
            )
            if info.get("type") == "directory":
                raise StagingError(
                    f"input {redact(url)} is a directory, but the task declares a FILE"
                )
            digest = self._download(fs, root, info, dest, ctx)
            return [FileRecord(url=url, path="", size=digest.size, sha256=digest.sha256)]
        except FileNotFoundError as exc:
            refused = refusal_in(exc)
            if refused is not None:  # fsspec's HTTP filesystem says "not found" for any failure
                raise StagingError(f"download of {redact(url)} failed: {refused}") from None
            raise MissingInput(redact(url)) from None
        except StagingError:
            raise
        except Exception as exc:
            raise StagingError(f"download of {redact(url)} failed: {_message(exc)}") from exc

    def _fetch_tree(
        self, fs: AbstractFileSystem, url: str, root: str, dest: Path, ctx: StageContext
    ) -> list[FileRecord]:
        """Every file under ``root``: the small ones in bulk, the others one job each."""
        from fsspec.asyn import AsyncFileSystem

        listing: dict[str, ObjectInfo] = with_retries(
            lambda: fs.find(root, detail=True), f"list {redact(url)}", ctx.attempts
        )
        if not listing and not fs.isdir(root):
            raise FileNotFoundError(root)
        dest.mkdir(parents=True, exist_ok=True)
        for marker in (n for n in listing if n.endswith("/")):  # an S3 "folder": a directory
            if marker.strip("/") != root.strip("/"):
                (dest / _relative(root, marker.rstrip("/"))).mkdir(parents=True, exist_ok=True)
        names = sorted(n for n in listing if not n.endswith("/"))
        # Only an asynchronous filesystem fetches many files at once (``cat(batch_size=)``).
        in_bulk = isinstance(fs, AsyncFileSystem)
        bulk = [n for n in names if in_bulk and _small(listing[n])]
        single = [n for n in names if not (in_bulk and _small(listing[n]))]
        jobs = [
            ctx.pool.submit(
                self._download, fs, name, listing[name], dest / _relative(root, name), ctx
            )
            for name in single
        ]
        digests = self._download_bulk(fs, root, bulk, listing, dest, ctx)
        digests.update(zip(single, (job.result() for job in jobs), strict=True))
        return [
            FileRecord(
                url=self.url_of(url, name),
                path=_relative(root, name),
                size=digests[name].size,
                sha256=digests[name].sha256,
            )
            for name in names
        ]

    def _download(
        self,
        fs: AbstractFileSystem,
        path: str,
        info: ObjectInfo,
        dest: Path,
        ctx: StageContext,
    ) -> StreamDigest:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial_name(dest)
        size = info.get("size")
        md5 = plain_etag(info) is not None

        def attempt() -> StreamDigest:
            with tmp.open("wb") as out:
                if isinstance(size, int) and size >= RANGED_MIN:
                    read = self.range_reader(fs, ctx.credentials)
                    return ranged_copy(read, path, size, out, md5=md5)
                if isinstance(size, int) and size <= CHUNK:
                    return copy_stream(io.BytesIO(fs.cat_file(path)), out, md5=md5)  # one GET
                with fs.open(path, "rb", block_size=CHUNK, cache_type="none") as src:
                    return copy_stream(src, out, md5=md5)

        try:
            digest = with_retries(attempt, f"download {path}", ctx.attempts)
            verify(path, info, digest)
            tmp.replace(dest)
            ctx.progress.add(digest.size)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return digest

    def _download_bulk(
        self,
        fs: AbstractFileSystem,
        root: str,
        names: list[str],
        listing: Mapping[str, ObjectInfo],
        dest: Path,
        ctx: StageContext,
    ) -> dict[str, StreamDigest]:
        """Small files, ``ctx.concurrency`` requests in flight on the filesystem's loop.

        Each file is checked and renamed into place like any other; one that failed
        in bulk gets the single-file path (with its retries and its error message).
        """
        digests: dict[str, StreamDigest] = {}
        for start in range(0, len(names), BULK_FILES):
            group = names[start : start + BULK_FILES]
            # on_error="return": a file that failed maps to its exception
            blobs: dict[str, bytes | BaseException] = fs.cat(
                group, on_error="return", batch_size=ctx.concurrency
            )
            for name in group:
                target = dest / _relative(root, name)
                blob = blobs.get(name)
                if not isinstance(blob, bytes):
                    digests[name] = self._download(fs, name, listing[name], target, ctx)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = partial_name(target)
                try:
                    with tmp.open("wb") as out:
                        digest = copy_stream(
                            io.BytesIO(blob), out, md5=plain_etag(listing[name]) is not None
                        )
                    verify(name, listing[name], digest)
                    tmp.replace(target)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
                ctx.progress.add(digest.size)
                digests[name] = digest
        return digests

    def deliver(self, src: Path, url: str, ctx: StageContext) -> FileRecord:
        ctx = dataclasses.replace(ctx, credentials=self.scoped(url, ctx.credentials))
        fs = self.filesystem(url, ctx.credentials)
        path = self.path(url)

        def attempt() -> StreamDigest:
            self.prepare_parent(fs, path)
            writer = self._open_upload(fs, path)
            try:
                with src.open("rb") as fin:
                    digest = copy_stream(fin, writer)
                writer.close()
            except BaseException:
                _abandon(writer)
                raise
            return digest

        try:
            digest = with_retries(attempt, f"upload {redact(url)}", ctx.attempts)
            stored = fs.info(path).get("size")
        except Exception as exc:
            raise StagingError(f"upload to {redact(url)} failed: {_message(exc)}") from exc
        if stored is not None and stored != digest.size:
            raise StagingError(
                f"upload of {redact(url)} is incomplete: the store has {stored} bytes, "
                f"the file has {digest.size}"
            )
        ctx.progress.add(digest.size)
        return FileRecord(url=url, path="", size=digest.size, sha256=digest.sha256)

    def deliver_directory(self, url: str, ctx: StageContext) -> bool:
        credentials = self.scoped(url, ctx.credentials)
        fs = self.filesystem(url, credentials)
        path = self.path(url)
        try:
            made: bool = with_retries(
                lambda: self.make_directory(fs, path, credentials),
                f"create {redact(url)}",
                ctx.attempts,
            )
        except Exception as exc:
            raise StagingError(f"cannot create {redact(url)}: {_message(exc)}") from exc
        return made

    def _open_upload(self, fs: AbstractFileSystem, path: str) -> Upload:
        writer = fs.open(path, "wb", block_size=UPLOAD_BLOCK)
        expected = self.writer_class()
        if not isinstance(writer, expected):
            raise TypeError(
                f"{type(self).__name__}: the filesystem's writer is a {type(writer).__name__}, "
                f"not a {expected.__name__}; writer_class() must name a class with discard()"
            )
        return writer


def _abandon(writer: Upload) -> None:
    """Throw an upload away (S3: abort the multipart upload), so that it never completes."""
    from fsspec.spec import AbstractBufferedFile

    with contextlib.suppress(Exception):
        writer.discard()
    if isinstance(writer, AbstractBufferedFile):
        # Closed, or its __del__ would try to finish the upload (and after a failed
        # abort, could): the one way fsspec's buffered writers are closed unfinished.
        writer.closed = True


def _relative(root: str, name: str) -> str:
    """``name``'s path below ``root``; stores differ on a leading slash (webdav4 has none)."""
    base, full = root.strip("/"), name.lstrip("/")
    if not base:
        rel = full
    elif full.startswith(base + "/"):
        rel = full[len(base) + 1 :]
    else:
        rel = full.rsplit("/", 1)[-1]
    if not rel or rel.startswith("/") or ".." in rel.split("/"):
        raise StagingError(f"refusing object name {name!r}: it would escape the input directory")
    return rel


def _small(info: ObjectInfo) -> bool:
    size = info.get("size")
    return isinstance(size, int) and size <= SMALL


def _message(exc: BaseException) -> str:
    """The store's own error message, without anything that could be a secret."""
    refused = refusal_in(exc)
    if refused is not None:
        return str(refused)
    text = str(exc) or type(exc).__name__
    return re.sub(r"(?i)(signature|credential|token|secret|password)=[^&\s]+", r"\1=***", text)
