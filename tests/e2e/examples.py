"""What the examples' end-to-end tests share: a moto S3 bucket that the CLI, its server
and the example's own scripts reach, and running the CLI expecting success."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import toolship as run_cli
from tests.integration.servers import free_port, moto


@contextmanager
def moto_bucket(env: pytest.MonkeyPatch, folder: Path, bucket: str) -> Iterator[Any]:
    """A moto S3 server on loopback with an empty ``bucket`` (its boto3 client), and the
    variables that point the AWS tools, the CLI's server and fsspec at it."""
    import boto3

    endpoint = f"http://127.0.0.1:{free_port()}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "TOOLSHIP_STORAGE__S3__ENDPOINT_URL": endpoint,
    }.items():
        env.setenv(key, value)
    server = moto(int(endpoint.rsplit(":", 1)[1]), folder / "moto.log")
    server.start()
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        yield client
    finally:
        server.stop()


def toolship(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``toolship ARGS…`` through the CLI, which must succeed (its output says why not)."""
    done = run_cli(*args, timeout=timeout)
    assert done.returncode == 0, f"toolship {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done
