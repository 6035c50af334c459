"""Object stores and web servers through fsspec: one implementation, a small class per scheme.

Downloads stream into a temporary file beside the destination while hashing, are
checked against the store's size (and plain-MD5 ETag where it has one) and only
then renamed into place; objects bigger than one chunk are fetched as concurrent
byte ranges.  The small files of a directory are fetched many at once on the
filesystem's own event loop (asynchronous filesystems: S3, HTTP), not one thread
and one request at a time: for small objects the round trip is the cost.
Uploads stream through the filesystem's writer (multipart on S3) and are
discarded — never completed — when anything fails, so no partial object
appears at the final key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import io
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from toolship.errors import InvalidRequest, StagingError
from toolship.storage.base import StageContext, redact
from toolship.storage.egress import EgressPolicy, aiohttp_session, httpx_transport, refusal_in
from toolship.storage.local import partial_name
from toolship.storage.settings import StorageSettings
from toolship.storage.transfer import CHUNK, FileRecord, StreamDigest, copy_stream, with_retries

if TYPE_CHECKING:
    # fsspec loads with the first remote URL, not with every worker.
    from fsspec import AbstractFileSystem

__all__ = ["HttpStorage", "RemoteStorage", "S3Storage", "WebdavStorage", "optional_storages"]

RANGED_MIN = CHUNK + 1  # objects bigger than one GET's worth are fetched as parallel ranges
RANGE_SIZE = 16 * 1024 * 1024  # at most; smaller objects are split into RANGE_WORKERS parts
RANGE_MIN_PART = 2 * 1024 * 1024
RANGE_WORKERS = 8
SMALL = 1024 * 1024  # files up to this size are fetched in bulk
BULK_FILES = 256  # per bulk round (bounds the bytes held in memory: BULK_FILES * SMALL)
_PLAIN_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')


class RemoteStorage:
    """A writable or read-only fsspec filesystem behind one or more URL schemes."""

    schemes: tuple[str, ...] = ()
    writable = True
    # The URLs name the host to connect to (not a bucket at the operator's endpoint):
    # the egress policy applies.
    names_hosts = False

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.egress = EgressPolicy.of(settings.egress.allow)
        self._filesystems: dict[tuple[Any, ...], AbstractFileSystem] = {}
        self._lock = threading.Lock()

    # --- what a subclass says ------------------------------------------------

    def make_filesystem(self, url: str, credentials: Mapping[str, str]) -> AbstractFileSystem:
        raise NotImplementedError

    def fs_key(self, url: str, credentials: Mapping[str, str]) -> tuple[Any, ...]:
        return (tuple(sorted(credentials.items())),)

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

    def range_reader(
        self, fs: AbstractFileSystem, credentials: Mapping[str, str]
    ) -> Callable[[str, int, int], bytes]:
        """``read(path, start, end)`` for the parallel ranges of a large object."""

        def read(path: str, start: int, end: int) -> bytes:
            data: bytes = fs.cat_file(path, start=start, end=end)
            return data

        return read

    # --- Storage ----------------------------------------------------------------

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
            found: dict[str, dict[str, Any]] = fs.glob(path, detail=True)
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
                listing: dict[str, dict[str, Any]] = with_retries(
                    lambda: fs.find(root, detail=True), f"list {redact(url)}", ctx.attempts
                )
                if not listing and not fs.isdir(root):
                    raise FileNotFoundError(root)
                dest.mkdir(parents=True, exist_ok=True)
                names = sorted(listing)
                bulk = [n for n in names if _bulk(fs, listing[n])]
                single = [n for n in names if not _bulk(fs, listing[n])]
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
            info = with_retries(lambda: fs.info(root), f"stat {redact(url)}", ctx.attempts)
            if info.get("type") == "directory":
                raise StagingError(
                    f"input {redact(url)} is a directory, but the task declares a FILE"
                )
            digest = self._download(fs, root, info, dest, ctx)
            return [FileRecord(url=url, path="", size=digest.size, sha256=digest.sha256)]
        except FileNotFoundError as exc:
            refused = refusal_in(exc)
            if refused is not None:  # fsspec's HTTP filesystem says "not found" for any failure
                raise StagingError(f"cannot fetch {redact(url)}: {refused}") from None
            raise StagingError(f"input {redact(url)} does not exist") from None
        except StagingError:
            raise
        except Exception as exc:
            raise StagingError(f"cannot fetch {redact(url)}: {_message(exc)}") from exc

    def _download(
        self,
        fs: AbstractFileSystem,
        path: str,
        info: Mapping[str, Any],
        dest: Path,
        ctx: StageContext,
    ) -> StreamDigest:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial_name(dest)
        size = info.get("size")
        md5 = _plain_etag(info) is not None

        def attempt() -> StreamDigest:
            with tmp.open("wb") as out:
                if isinstance(size, int) and size >= RANGED_MIN:
                    return _ranged(self.range_reader(fs, ctx.credentials), path, size, out, md5=md5)
                if isinstance(size, int) and size <= CHUNK:
                    return copy_stream(io.BytesIO(fs.cat_file(path)), out, md5=md5)  # one GET
                with fs.open(path, "rb", block_size=CHUNK, cache_type="none") as src:
                    return copy_stream(src, out, md5=md5)

        try:
            digest = with_retries(attempt, f"download {path}", ctx.attempts)
            _verify(path, info, digest)
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
        listing: Mapping[str, Mapping[str, Any]],
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
            blobs: dict[str, Any] = fs.cat(group, on_error="return", batch_size=ctx.concurrency)
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
                            io.BytesIO(blob), out, md5=_plain_etag(listing[name]) is not None
                        )
                    _verify(name, listing[name], digest)
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
            writer = fs.open(path, "wb", block_size=max(CHUNK, 5 * 1024 * 1024))
            try:
                with src.open("rb") as fin:
                    digest = copy_stream(fin, writer)
                writer.close()
            except BaseException:
                _discard(writer)
                raise
            return digest

        try:
            digest = with_retries(attempt, f"upload {redact(url)}", ctx.attempts)
            stored = fs.info(path).get("size")
        except Exception as exc:
            raise StagingError(f"cannot upload {redact(url)}: {_message(exc)}") from exc
        if stored is not None and stored != digest.size:
            raise StagingError(
                f"upload of {redact(url)} is incomplete: the store has {stored} bytes, "
                f"the file has {digest.size}"
            )
        ctx.progress.add(digest.size)
        return FileRecord(url=url, path="", size=digest.size, sha256=digest.sha256)


def _relative(root: str, name: str) -> str:
    rel = name[len(root) :].lstrip("/") if name.startswith(root) else name.rsplit("/", 1)[-1]
    if not rel or rel.startswith("/") or ".." in rel.split("/"):
        raise StagingError(f"refusing object name {name!r}: it would escape the input directory")
    return rel


def _discard(writer: Any) -> None:
    """Abandon an upload without completing it (S3: abort the multipart upload)."""
    discard = getattr(writer, "discard", None)
    with contextlib.suppress(Exception):
        if callable(discard):
            discard()
        else:
            writer.closed = True


def _verify(path: str, info: Mapping[str, Any], digest: StreamDigest) -> None:
    size = info.get("size")
    if isinstance(size, int) and size != digest.size:
        raise StagingError(f"{path}: got {digest.size} bytes, the store says {size}")
    plain = _plain_etag(info)
    if plain and digest.md5 and plain != digest.md5:
        raise StagingError(f"{path}: content does not match the store's ETag {plain}")


def _plain_etag(info: Mapping[str, Any]) -> str | None:
    """The object's MD5 when its ETag is one (not for multipart uploads: no MD5 to check)."""
    plain = _PLAIN_ETAG.match(str(info.get("ETag") or info.get("etag") or ""))
    return plain.group(1) if plain else None


def _bulk(fs: AbstractFileSystem, info: Mapping[str, Any]) -> bool:
    size = info.get("size")
    return bool(getattr(fs, "async_impl", False)) and isinstance(size, int) and size <= SMALL


def _part_size(size: int) -> int:
    """Ranges of RANGE_SIZE, or fewer bytes so that even a mid-sized object gets every worker."""
    per_worker = -(-size // RANGE_WORKERS)
    return max(RANGE_MIN_PART, min(RANGE_SIZE, per_worker))


def _ranged(
    read: Callable[[str, int, int], bytes], path: str, size: int, out: Any, *, md5: bool
) -> StreamDigest:
    """Fetch ``size`` bytes as concurrent ranges, hashing and writing them in order."""
    import hashlib

    sha = hashlib.sha256()
    md = hashlib.md5(usedforsecurity=False) if md5 else None
    part = _part_size(size)
    starts = list(range(0, size, part))
    with ThreadPoolExecutor(RANGE_WORKERS) as pool:
        window: list[Any] = []
        for start in starts:
            window.append(pool.submit(read, path, start, min(start + part, size)))
            if len(window) > RANGE_WORKERS:
                _consume(window.pop(0).result(), sha, md, out)
        for job in window:
            _consume(job.result(), sha, md, out)
    return StreamDigest(size=size, sha256=sha.hexdigest(), md5=md.hexdigest() if md else "")


def _consume(block: bytes, sha: Any, md: Any, out: Any) -> None:
    sha.update(block)
    if md is not None:
        md.update(block)
    out.write(block)


def _message(exc: BaseException) -> str:
    """The store's own error message, without anything that could be a secret."""
    refused = refusal_in(exc)
    if refused is not None:
        return str(refused)
    text = str(exc) or type(exc).__name__
    return re.sub(r"(?i)(signature|credential|token|secret|password)=[^&\s]+", r"\1=***", text)


class S3Storage(RemoteStorage):
    """s3:// — AWS S3 or any S3-compatible store (MinIO, Ceph, moto) through s3fs."""

    schemes: tuple[str, ...] = ("s3",)

    def __init__(self, settings: StorageSettings) -> None:
        super().__init__(settings)
        self._range_clients: dict[tuple[Any, ...], Any] = {}

    def fs_key(self, url: str, credentials: Mapping[str, str]) -> tuple[Any, ...]:
        return tuple(sorted((k, v) for k, v in credentials.items() if k.startswith("s3_")))

    def scoped(self, url: str, credentials: Mapping[str, str]) -> Mapping[str, str]:
        if any(k.startswith("s3_") for k in credentials):
            return credentials
        server = self.settings.credential_for(url)
        if server is None:
            return credentials
        if server.access_key_id:
            return {
                "s3_access_key_id": server.access_key_id,
                "s3_secret_access_key": server.secret_access_key,
                "s3_session_token": server.session_token,
            }
        return {"s3_profile": server.profile}

    def make_filesystem(self, url: str, credentials: Mapping[str, str]) -> AbstractFileSystem:
        import s3fs

        s3 = self.settings.s3
        kwargs: dict[str, Any] = {
            "anon": s3.anonymous,
            "default_block_size": CHUNK,
            "skip_instance_cache": True,
            "config_kwargs": {
                "retries": {"max_attempts": 3, "mode": "standard"},
                # botocore keeps 10 connections by default: fewer than the transfers in flight.
                "max_pool_connections": max(10, self.settings.max_concurrency),
            },
        }
        if s3.endpoint_url:
            kwargs["endpoint_url"] = s3.endpoint_url
        if s3.region:
            kwargs["client_kwargs"] = {"region_name": s3.region}
        profile = credentials.get("s3_profile") or s3.profile
        if credentials.get("s3_access_key_id"):
            kwargs.update(
                key=credentials["s3_access_key_id"],
                secret=credentials.get("s3_secret_access_key"),
                token=credentials.get("s3_session_token"),
            )
        elif profile:
            kwargs["profile"] = profile
        fs: AbstractFileSystem = s3fs.S3FileSystem(**kwargs)
        return fs

    def range_reader(
        self, fs: AbstractFileSystem, credentials: Mapping[str, str]
    ) -> Callable[[str, int, int], bytes]:
        """Ranges through botocore's own synchronous client, shared by the range workers.

        s3fs reads every range on its one event-loop thread and spent about twice
        botocore's CPU per byte; botocore reads its sockets without holding the GIL.
        The client is made from the same settings and credentials as the filesystem.
        """
        key = self.fs_key("s3://", credentials)
        with self._lock:
            client = self._range_clients.get(key)
            if client is None:
                client = self._range_clients[key] = self._botocore_client(credentials)

        def read(path: str, start: int, end: int) -> bytes:
            bucket, _, name = path.partition("/")
            response = client.get_object(Bucket=bucket, Key=name, Range=f"bytes={start}-{end - 1}")
            data: bytes = response["Body"].read()
            return data

        return read

    def _botocore_client(self, credentials: Mapping[str, str]) -> Any:
        import botocore.config
        import botocore.session
        from botocore import UNSIGNED

        s3 = self.settings.s3
        profile = credentials.get("s3_profile") or s3.profile
        session = botocore.session.Session(profile=profile or None)
        config = botocore.config.Config(
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=RANGE_WORKERS,
            signature_version=UNSIGNED if s3.anonymous else None,
        )
        kwargs: dict[str, Any] = {"config": config}
        if s3.endpoint_url:
            kwargs["endpoint_url"] = s3.endpoint_url
        if s3.region:
            kwargs["region_name"] = s3.region
        if credentials.get("s3_access_key_id"):
            kwargs.update(
                aws_access_key_id=credentials["s3_access_key_id"],
                aws_secret_access_key=credentials.get("s3_secret_access_key"),
                aws_session_token=credentials.get("s3_session_token"),
            )
        return session.create_client("s3", **kwargs)


class HttpStorage(RemoteStorage):
    """http:// and https:// — read-only inputs from web servers."""

    schemes: tuple[str, ...] = ("http", "https")
    writable = False
    names_hosts = True

    def path(self, url: str) -> str:
        return url.rstrip("/")

    def url_of(self, url: str, path: str) -> str:
        return path

    def glob(self, pattern: str, credentials: Mapping[str, str]) -> list[str]:
        raise InvalidRequest(
            f"{pattern!r}: web servers cannot be listed, so http(s):// patterns cannot be "
            "mapped over; list the URLs yourself and run a sweep with --params-file"
        )

    def make_filesystem(self, url: str, credentials: Mapping[str, str]) -> AbstractFileSystem:
        from fsspec.implementations.http import HTTPFileSystem

        fs: AbstractFileSystem = HTTPFileSystem(
            skip_instance_cache=True, get_client=functools.partial(aiohttp_session, self.egress)
        )
        return fs


class WebdavStorage(RemoteStorage):
    """webdav:// (over http) and webdavs:// (over https): Nextcloud, B2DROP, ownCloud …"""

    schemes: tuple[str, ...] = ("webdav", "webdavs")
    names_hosts = True

    def scoped(self, url: str, credentials: Mapping[str, str]) -> Mapping[str, str]:
        if credentials.get("webdav_username"):
            return credentials  # the task's own: it sends them where it likes
        server = self.settings.credential_for(url)
        if server is None:
            return {}
        return {"webdav_username": server.username, "webdav_password": server.password}

    def fs_key(self, url: str, credentials: Mapping[str, str]) -> tuple[Any, ...]:
        parts = urlsplit(url)
        user = (credentials.get("webdav_username"), credentials.get("webdav_password"))
        return (parts.scheme, parts.netloc, user)

    def path(self, url: str) -> str:
        return urlsplit(url).path.rstrip("/") or "/"

    def url_of(self, url: str, path: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}/{path.lstrip('/')}"

    def make_filesystem(self, url: str, credentials: Mapping[str, str]) -> AbstractFileSystem:
        from webdav4.fsspec import WebdavFileSystem

        parts = urlsplit(url)
        base = f"{'https' if parts.scheme == 'webdavs' else 'http'}://{parts.netloc}"
        user = credentials.get("webdav_username")
        auth = (user, credentials.get("webdav_password") or "") if user else None
        fs: AbstractFileSystem = WebdavFileSystem(
            base, auth=auth, transport=httpx_transport(self.egress)
        )
        return fs

    def check_input(self, url: str, kind: str) -> None:
        if not urlsplit(url).netloc:
            raise InvalidRequest(f"{url!r}: write webdav://HOST[:PORT]/path")
        self.check_egress(url)

    def prepare_parent(self, fs: AbstractFileSystem, path: str) -> None:
        parent = path.rsplit("/", 1)[0]
        if parent and parent != "/":
            fs.makedirs(parent, exist_ok=True)


class _Generic(RemoteStorage):
    """gs:// and az:// through their fsspec packages, with default credentials."""

    def make_filesystem(self, url: str, credentials: Mapping[str, str]) -> AbstractFileSystem:
        import fsspec

        fs: AbstractFileSystem = fsspec.filesystem(self.schemes[0], skip_instance_cache=True)
        return fs


class GcsStorage(_Generic):
    schemes: tuple[str, ...] = ("gs",)


class AzureStorage(_Generic):
    schemes: tuple[str, ...] = ("az", "abfs")


def optional_storages(
    settings: StorageSettings,
) -> tuple[list[RemoteStorage], dict[str, str]]:
    """gs:// and az:// when their extras are installed, else how to install them."""
    found: list[RemoteStorage] = []
    missing: dict[str, str] = {}
    for cls, module, extra in ((GcsStorage, "gcsfs", "gcs"), (AzureStorage, "adlfs", "azure")):
        if importlib.util.find_spec(module) is not None:
            found.append(cls(settings))
        else:
            for scheme in cls.schemes:
                missing[scheme] = (
                    f"{scheme}:// needs the optional extra: pip install 'toolship[{extra}]' "
                    "on the server"
                )
    return found, missing
