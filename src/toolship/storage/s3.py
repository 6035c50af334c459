"""``s3://`` — AWS S3 or any S3-compatible store (MinIO, Ceph, moto) through s3fs.

s3:// URLs name buckets at the operator's endpoint (``storage.s3``), not hosts, so
the egress policy does not apply.  A task's own ``s3_*`` credentials win; else the
server's credential for the URL's prefix, else the endpoint's defaults.  Large
objects are read as parallel ranges through botocore's synchronous client.  An
empty directory of a DIRECTORY output is a zero-byte object named ``dir/``, the
folder marker the S3 console makes (S3 itself has no directories).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Protocol, TypedDict

from toolship.storage.remote import RemoteStorage
from toolship.storage.settings import StorageSettings
from toolship.storage.transfer import CHUNK, RANGE_WORKERS

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["S3Storage"]


class _Retries(TypedDict):
    max_attempts: int
    mode: str


class _BotocoreConfig(TypedDict):
    retries: _Retries
    max_pool_connections: int


class _S3FsArguments(TypedDict, total=False):
    """What :class:`s3fs.S3FileSystem` is given."""

    anon: bool
    default_block_size: int
    skip_instance_cache: bool
    config_kwargs: _BotocoreConfig
    endpoint_url: str
    client_kwargs: dict[str, str]
    key: str
    secret: str | None
    token: str | None
    profile: str


class _ClientArguments(TypedDict, total=False):
    """What botocore's ``create_client("s3", …)`` is given besides the service name."""

    config: object  # a botocore.config.Config
    endpoint_url: str
    region_name: str
    aws_access_key_id: str
    aws_secret_access_key: str | None
    aws_session_token: str | None


class _Body(Protocol):
    def read(self) -> bytes: ...


class _GetObjectAnswer(TypedDict):
    Body: _Body


class _Client(Protocol):
    """The calls of botocore's S3 client made directly: ranged reads, folder markers."""

    def get_object(self, *, Bucket: str, Key: str, Range: str) -> _GetObjectAnswer: ...

    def put_object(self, *, Bucket: str, Key: str, Body: bytes) -> object: ...


class S3Storage(RemoteStorage):
    """s3:// — AWS S3 or any S3-compatible store (MinIO, Ceph, moto) through s3fs."""

    schemes: tuple[str, ...] = ("s3",)

    def __init__(self, settings: StorageSettings) -> None:
        super().__init__(settings)
        self._clients: dict[Hashable, _Client] = {}

    def fs_key(self, url: str, credentials: Mapping[str, str]) -> Hashable:
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
        kwargs: _S3FsArguments = {
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
            kwargs["key"] = credentials["s3_access_key_id"]
            kwargs["secret"] = credentials.get("s3_secret_access_key")
            kwargs["token"] = credentials.get("s3_session_token")
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
        client = self._client(credentials)

        def read(path: str, start: int, end: int) -> bytes:
            bucket, _, name = path.partition("/")
            response = client.get_object(Bucket=bucket, Key=name, Range=f"bytes={start}-{end - 1}")
            return response["Body"].read()

        return read

    def make_directory(
        self, fs: AbstractFileSystem, path: str, credentials: Mapping[str, str]
    ) -> bool:
        """A zero-byte ``path/`` object (s3fs would drop the slash); a bucket exists already."""
        bucket, _, key = path.partition("/")
        if key.strip("/"):
            self._client(credentials).put_object(Bucket=bucket, Key=key.strip("/") + "/", Body=b"")
        return True

    def _client(self, credentials: Mapping[str, str]) -> _Client:
        key = self.fs_key("s3://", credentials)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._botocore_client(credentials)
            return client

    def _botocore_client(self, credentials: Mapping[str, str]) -> _Client:
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
        kwargs: _ClientArguments = {"config": config}
        if s3.endpoint_url:
            kwargs["endpoint_url"] = s3.endpoint_url
        if s3.region:
            kwargs["region_name"] = s3.region
        if credentials.get("s3_access_key_id"):
            kwargs["aws_access_key_id"] = credentials["s3_access_key_id"]
            kwargs["aws_secret_access_key"] = credentials.get("s3_secret_access_key")
            kwargs["aws_session_token"] = credentials.get("s3_session_token")
        client: _Client = session.create_client("s3", **kwargs)
        return client
