"""Storage fixtures: they set the server's environment, so list them before ``server``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers import Process, Proxy, free_port, http_server, moto, webdav


@dataclass
class S3:
    endpoint: str  # what toolship uses (through the proxy)
    direct: str  # moto itself
    proxy: Proxy
    server: Process

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.direct, region_name="us-east-1")


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    server = moto(port, tmp_path / "moto.log")
    server.start()
    proxy = Proxy(port)
    proxy.start()
    endpoint = f"http://127.0.0.1:{proxy.port}"
    monkeypatch.setenv("TOOLSHIP_STORAGE__S3__ENDPOINT_URL", endpoint)
    try:
        yield S3(endpoint=endpoint, direct=f"http://127.0.0.1:{port}", proxy=proxy, server=server)
    finally:
        proxy.cut()
        server.stop()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    port = free_port()
    server = http_server(root, port, tmp_path / "http.log")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", root
    finally:
        server.stop()


@pytest.fixture
def dav(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "dav"
    root.mkdir()
    port = free_port()
    server = webdav(root, port, tmp_path / "webdav.log")
    server.start()
    try:
        yield f"webdav://127.0.0.1:{port}", root
    finally:
        server.stop()
