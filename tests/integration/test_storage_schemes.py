"""Each remote scheme against its real server on loopback, in-process: no podman, no server.

What a worker does with a URL: fetch a file (large ones as ranges), fetch a folder
(small files in bulk), deliver a file, list a pattern; an upload that fails leaves
nothing at the target.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import pytest

import toolship.storage.remote
from tests.integration.conftest import S3
from toolship.errors import InvalidRequest, StagingError
from toolship.storage import StageContext, make_registry
from toolship.storage.http import HttpStorage
from toolship.storage.s3 import S3Storage
from toolship.storage.settings import StorageSettings
from toolship.storage.transfer import Sink, StreamDigest
from toolship.storage.webdav import WebdavStorage

# Loopback servers are the point here; a shared server refuses them (tests/security).
LOOPBACK = {"egress": {"allow": ["loopback"]}}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def ctx() -> Iterator[StageContext]:
    with ThreadPoolExecutor(4) as pool:
        yield StageContext(pool=pool, attempts=1)


@pytest.fixture
def s3_storage(s3: S3) -> S3Storage:
    return S3Storage(StorageSettings.model_validate({"s3": {"endpoint_url": s3.direct}}))


def test_s3_round_trip_large_and_small_files(
    s3: S3, s3_storage: S3Storage, ctx: StageContext, tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket="data")
    big = os.urandom(20 * 2**20 + 3)  # multipart up, parallel ranges down
    src = tmp_path / "big.bin"
    src.write_bytes(big)
    record = s3_storage.deliver(src, "s3://data/run/big.bin", ctx)
    assert (record.size, record.sha256) == (len(big), sha(big))
    small = {f"run/small/{i:03}.txt": f"file {i}\n".encode() for i in range(40)}
    for key, body in small.items():
        s3.client().put_object(Bucket="data", Key=key, Body=body)

    [got] = s3_storage.fetch("s3://data/run/big.bin", tmp_path / "in" / "big.bin", "FILE", ctx)
    assert (got.path, got.size, got.sha256) == ("", len(big), sha(big))
    assert (tmp_path / "in" / "big.bin").read_bytes() == big
    records = s3_storage.fetch("s3://data/run/", tmp_path / "tree", "DIRECTORY", ctx)
    assert [r.path for r in records] == ["big.bin", *(k.removeprefix("run/") for k in small)]
    for r in records[1:]:
        body = small[f"run/{r.path}"]
        assert (tmp_path / "tree" / r.path).read_bytes() == body
        assert (r.url, r.sha256) == (f"s3://data/run/{r.path}", sha(body))
    assert ctx.progress.files == 2 + len(records)
    assert s3_storage.glob("s3://data/run/small/00*.txt", {}) == [
        f"s3://data/run/small/00{i}.txt" for i in range(10)
    ]
    assert not list((tmp_path / "tree").rglob(".*partial*"))


def failing_copy(src: BinaryIO, dst: Sink, *, md5: bool = False, chunk: int = 0) -> StreamDigest:
    """Write part of the file, then lose the source."""
    dst.write(src.read(10 * 2**20))  # more than one part: a multipart upload has begun
    raise OSError("source went away")


def test_a_failed_s3_upload_is_discarded_not_completed(
    s3: S3,
    s3_storage: S3Storage,
    ctx: StageContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3.client()
    bucket.create_bucket(Bucket="out")
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * 2**20))
    monkeypatch.setattr(toolship.storage.remote, "copy_stream", failing_copy)
    with pytest.raises(StagingError, match=r"upload to s3://out/big\.bin failed: source went away"):
        s3_storage.deliver(src, "s3://out/big.bin", ctx)
    assert bucket.list_objects_v2(Bucket="out").get("Contents", []) == []
    assert bucket.list_multipart_uploads(Bucket="out").get("Uploads", []) == []


def test_webdav_round_trip_into_new_folders(
    dav: tuple[str, Path], ctx: StageContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = dav
    storage = WebdavStorage(StorageSettings.model_validate(LOOPBACK))
    src = tmp_path / "a.txt"
    src.write_bytes(b"hello\n")
    record = storage.deliver(src, f"{url}/deep/er/a.txt", ctx)
    assert (root / "deep" / "er" / "a.txt").read_bytes() == b"hello\n"
    assert record.sha256 == sha(b"hello\n")
    (root / "deep" / "er" / "b.txt").write_bytes(b"b\n")

    records = storage.fetch(f"{url}/deep/er/", tmp_path / "tree", "DIRECTORY", ctx)
    assert [(r.url, r.path, r.sha256) for r in records] == [
        (f"{url}/deep/er/a.txt", "a.txt", sha(b"hello\n")),
        (f"{url}/deep/er/b.txt", "b.txt", sha(b"b\n")),
    ]
    assert (tmp_path / "tree" / "a.txt").read_bytes() == b"hello\n"

    monkeypatch.setattr(toolship.storage.remote, "copy_stream", failing_copy)
    with pytest.raises(StagingError, match="source went away"):
        storage.deliver(src, f"{url}/deep/c.txt", ctx)
    assert sorted(p.name for p in (root / "deep").iterdir()) == ["er"]


def test_a_webdav_folder_keeps_its_subfolders(
    dav: tuple[str, Path], ctx: StageContext, tmp_path: Path
) -> None:
    # Files of one name in two subfolders must not land on one path (and lose one).
    url, root = dav
    for sub, body in (("x", b"from x\n"), ("y/z", b"from y/z\n")):
        (root / "run" / sub).mkdir(parents=True)
        (root / "run" / sub / "same.txt").write_bytes(body)
    storage = WebdavStorage(StorageSettings.model_validate(LOOPBACK))
    records = storage.fetch(f"{url}/run/", tmp_path / "tree", "DIRECTORY", ctx)
    assert sorted((r.url, r.path) for r in records) == [
        (f"{url}/run/x/same.txt", "x/same.txt"),
        (f"{url}/run/y/z/same.txt", "y/z/same.txt"),
    ]
    assert (tmp_path / "tree" / "x" / "same.txt").read_bytes() == b"from x\n"
    assert (tmp_path / "tree" / "y" / "z" / "same.txt").read_bytes() == b"from y/z\n"


def test_http_inputs_are_read_only_and_cannot_be_listed(
    web: tuple[str, Path], ctx: StageContext, tmp_path: Path
) -> None:
    url, root = web
    (root / "genome.fa").write_bytes(b">chr1\nACGT\n")
    storage = HttpStorage(StorageSettings.model_validate(LOOPBACK))
    [record] = storage.fetch(f"{url}/genome.fa", tmp_path / "g.fa", "FILE", ctx)
    assert (record.url, record.sha256) == (f"{url}/genome.fa", sha(b">chr1\nACGT\n"))
    with pytest.raises(StagingError, match=r"genome\.fb does not exist"):
        storage.fetch(f"{url}/genome.fb", tmp_path / "x", "FILE", ctx)
    with pytest.raises(InvalidRequest, match="read-only here"):
        storage.check_output(f"{url}/out.txt")
    with pytest.raises(InvalidRequest, match="cannot be listed"):
        storage.glob(f"{url}/*.fa", {})


def test_the_registry_lists_every_scheme_and_says_how_to_get_a_missing_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("gcsfs", "adlfs") else real(name, *a),
    )
    registry = make_registry(StorageSettings.model_validate({"allowed_roots": ["/srv/"]}))
    assert registry.prefixes() == [
        "file:///srv/", "s3://", "http://", "https://", "webdav://", "webdavs://",
    ]  # fmt: skip
    assert isinstance(registry.for_url("webdavs://h/x"), WebdavStorage)
    with pytest.raises(InvalidRequest, match=r"pip install 'toolship\[azure\]' on the server"):
        registry.for_url("abfs://container/x")
    with pytest.raises(InvalidRequest, match=r"pip install 'toolship\[gcs\]' on the server"):
        registry.for_url("gs://bucket/x")
