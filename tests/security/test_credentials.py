"""The server's WebDAV and S3 credentials go only to the endpoints they belong to.

``storage.webdav_username``/``webdav_password`` used to be sent to every WebDAV host a
task named: a listener on loopback received the server's Basic password.  Server
credentials are now configured per URL prefix (``[[storage.credentials]]``) and sent
only to URLs under it — same scheme, host and port, the path continuing at a ``/``.
The old settings stop the server at start-up, naming the replacement.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security.test_egress import Recorder
from toolship import Client
from toolship.states import TaskState
from toolship.storage.settings import StorageSettings


@pytest.fixture
def first() -> Iterator[Recorder]:
    r = Recorder()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def second() -> Iterator[Recorder]:
    r = Recorder()
    try:
        yield r
    finally:
        r.close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def scoped_config(
    tmp_path: Path, first: Recorder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Server credentials for one WebDAV folder on ``first``: list it before ``server``."""
    config = tmp_path / "toolship.toml"
    config.write_text(
        "[[storage.credentials]]\n"
        f'prefix = "http://127.0.0.1:{first.port}/data/"\n'
        'username = "svc"\npassword = "server-secret"\n'
    )
    monkeypatch.setenv("TOOLSHIP_CONFIG", str(config))
    yield config


def _fetch(client: Client, busybox: str, url: str) -> None:
    task = client.submit(busybox, ["true"], inputs={"in": url})
    assert task.wait(120) in (TaskState.COMPLETE, TaskState.SYSTEM_ERROR), task.info()


def test_server_credentials_go_only_to_urls_under_their_prefix(
    scoped_config: Path, server: Any, busybox: str, first: Recorder, second: Recorder
) -> None:
    secret = _basic("svc", "server-secret")
    with Client(server.url, server.token, timeout=120) as client:
        _fetch(client, busybox, f"webdav://127.0.0.1:{second.port}/data/x")  # another port
        _fetch(client, busybox, f"webdav://localhost:{first.port}/data/x")  # another host name
        _fetch(client, busybox, f"webdav://127.0.0.1:{first.port}/database/x")  # not a folder
        _fetch(client, busybox, f"webdav://127.0.0.1:{first.port}/data/../other/x")
        assert second.requests
        assert all(auth != secret for _, _, auth in second.requests), second.requests
        assert first.requests
        assert all(auth != secret for _, _, auth in first.requests), first.requests
        first.requests.clear()
        _fetch(client, busybox, f"webdav://127.0.0.1:{first.port}/data/x")
        assert first.requests
        assert all(auth == secret for _, _, auth in first.requests), first.requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_old_server_wide_password_never_reaches_a_host_a_task_names(
    tmp_path: Path, busybox: str, first: Recorder
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "old.toml"
    config.write_text('[storage]\nwebdav_username = "svc"\nwebdav_password = "server-secret"\n')
    port = _free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOOLSHIP_")}
    env = {**clean, "TOOLSHIP_HOME": str(home), "TOOLSHIP_CONFIG": str(config),
           # loopback is where the listener is: allow it, as an operator might
           "TOOLSHIP_STORAGE__EGRESS__ALLOW": '["loopback"]'}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolship", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/v1/health").status_code == 200:
                    break
            time.sleep(0.1)
        if proc.poll() is None:  # it started with the server-wide password: where does it go?
            with Client(url) as client:
                _fetch(client, busybox, f"webdav://127.0.0.1:{first.port}/x")
            leaked = [auth for _, _, auth in first.requests if auth]
            pytest.fail(f"the server started, and a host the task named received {leaked}")
        output = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
    assert proc.returncode != 0
    assert "storage.webdav_username" in output and "[[storage.credentials]]" in output, output
    assert "server-secret" not in output
    assert first.requests == []


@pytest.mark.parametrize(
    ("url", "held"),
    [
        ("webdavs://dav.example.org/data/x", True),
        ("webdavs://dav.example.org/data", True),
        ("webdavs://DAV.example.org:443/data/a/b", True),
        ("webdav://dav.example.org/data/x", False),  # plain text: not the https server
        ("webdavs://dav.example.org:8443/data/x", False),
        ("webdavs://dav.example.org.evil/data/x", False),
        ("webdavs://evil.example/dav.example.org/data/x", False),
        ("webdavs://dav.example.org/database/x", False),
        ("webdavs://dav.example.org/data/../private/x", False),
        ("webdavs://dav.example.org/data/%2e%2e/private/x", False),
        ("s3://data/x", False),
    ],
)
def test_a_prefix_holds_only_its_own_urls(url: str, held: bool) -> None:
    held_by = {"prefix": "https://dav.example.org/data/", "username": "u", "password": "p"}
    settings = StorageSettings.model_validate({"credentials": [held_by]})
    assert (settings.credential_for(url) is not None) is held


def test_s3_credentials_are_scoped_to_their_bucket() -> None:
    from toolship.storage.s3 import S3Storage

    settings = StorageSettings.model_validate(
        {"credentials": [
            {"prefix": "s3://lab-data/", "access_key_id": "AKIDLAB", "secret_access_key": "s"},
            {"prefix": "s3://lab-data/shared/", "profile": "shared"},
        ]}
    )  # fmt: skip
    s3 = S3Storage(settings)
    assert s3.scoped("s3://lab-data/x", {})["s3_access_key_id"] == "AKIDLAB"
    assert s3.scoped("s3://lab-data/shared/x", {}) == {"s3_profile": "shared"}  # the longest
    assert s3.scoped("s3://lab-database/x", {}) == {}
    mine = {"s3_access_key_id": "AKIDTASK", "s3_secret_access_key": "t"}
    assert s3.scoped("s3://lab-data/x", mine) == mine  # the task's own come first


def test_a_credential_that_cannot_be_used_is_refused_at_start() -> None:
    from toolship.config import load_settings
    from toolship.errors import ConfigError

    for bad in (
        {"prefix": "dav.example.org/data/", "username": "u", "password": "p"},
        {"prefix": "s3://bucket/", "username": "u", "password": "p"},
        {"prefix": "https://dav.example.org/", "access_key_id": "A"},
        {"prefix": "https://u:p@dav.example.org/", "username": "u", "password": "p"},
    ):
        with pytest.raises(ConfigError, match=r"storage\.credentials"):
            load_settings(storage={"credentials": [bad]})
