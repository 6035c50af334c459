"""Server-side request forgery: a task's http(s):// and webdav:// URLs reach only allowed hosts.

A task used to make the server fetch anything it named: the server's own loopback
API, a cloud's metadata service (169.254.169.254), the private network behind it.
A shared server (``toolship serve``) now refuses loopback, link-local, private and
other special addresses unless ``storage.egress.allow`` lists them — when the task
is created (a 400 naming the setting) and again on the address each connection is
actually made to (so a name that resolves elsewhere later, DNS rebinding, gets
nowhere).  The embedded server allows loopback and private addresses, never
link-local ones.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security.shared import shared_server
from toolship.errors import StagingError
from toolship.storage import StageContext
from toolship.storage.http import HttpStorage
from toolship.storage.settings import StorageSettings
from toolship.storage.webdav import WebdavStorage


class Recorder(ThreadingHTTPServer):
    """A web server on loopback that answers every request and remembers each one."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _answer(self) -> None:
        self.server.requests.append((self.command, self.path, self.headers["Authorization"]))
        body = b"secret of the host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PROPFIND = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    try:
        yield r
    finally:
        r.close()


def _task(
    inputs: list[dict[str, str]], outputs: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {
        "executors": [{"image": "localhost/toolship-busybox", "command": ["true"]}],
        "inputs": inputs,
        "outputs": outputs or [],
    }


def _input(url: str) -> dict[str, str]:
    return {"url": url, "path": "/work/in", "type": "FILE"}


def test_a_shared_server_refuses_urls_that_reach_loopback_link_local_or_private(
    tmp_path: Path, recorder: Recorder
) -> None:
    loop = recorder.port
    refused = {
        f"http://127.0.0.1:{loop}/x": "loopback",
        f"http://localhost:{loop}/x": "loopback",
        f"http://[::1]:{loop}/x": "loopback",
        f"http://[::ffff:127.0.0.1]:{loop}/x": "loopback",
        f"webdav://127.0.0.1:{loop}/x": "loopback",
        "http://169.254.169.254/latest/meta-data/": "link-local",
        "https://10.0.0.1/x": "private",
        "http://192.168.1.1/x": "private",
        f"http://0.0.0.0:{loop}/x": "unspecified",
    }
    with shared_server(tmp_path) as srv, srv.client() as api:
        for target, kind in refused.items():
            response = api.post("/ga4gh/tes/v1/tasks", json=_task([_input(target)]))
            assert response.status_code == 400, (target, response.text)
            detail = response.json()["detail"]
            assert "inputs[0].url" in detail and "storage.egress.allow" in detail, detail
            assert f'"{kind}"' in detail, detail
        out = {"url": f"webdav://127.0.0.1:{loop}/out", "path": "/work/o", "type": "FILE"}
        response = api.post("/ga4gh/tes/v1/tasks", json=_task([], [out]))
        assert response.status_code == 400, response.text
        assert "storage.egress.allow" in response.json()["detail"]
        assert "outputs[0].url" in response.json()["detail"]
    assert recorder.requests == []


def test_the_operator_may_allow_an_address_and_the_embedded_server_allows_loopback(
    tmp_path: Path, recorder: Recorder
) -> None:
    target = f"http://127.0.0.1:{recorder.port}/x"
    metadata = "http://169.254.169.254/latest/meta-data/"
    allowed = {"TOOLSHIP_STORAGE__EGRESS__ALLOW": '["127.0.0.1"]'}
    with shared_server(tmp_path, env=allowed) as srv, srv.client() as api:
        assert api.post("/ga4gh/tes/v1/tasks", json=_task([_input(target)])).status_code == 200
        assert api.post("/ga4gh/tes/v1/tasks", json=_task([_input(metadata)])).status_code == 400


def test_the_embedded_server_allows_loopback_but_never_link_local(
    api: httpx.Client, recorder: Recorder
) -> None:
    target = f"http://127.0.0.1:{recorder.port}/x"
    assert api.post("/ga4gh/tes/v1/tasks", json=_task([_input(target)])).status_code == 200
    response = api.post(
        "/ga4gh/tes/v1/tasks", json=_task([_input("http://169.254.169.254/latest/meta-data/")])
    )
    assert response.status_code == 400
    assert '"link-local"' in response.json()["detail"]


# --- the address actually connected to ------------------------------------------------


def _shared() -> StorageSettings:
    """A shared server's storage settings: no special address allowed."""
    return StorageSettings.model_validate({"egress": {"allow": []}})


def test_the_defaults_of_each_kind_of_server() -> None:
    assert StorageSettings().for_server(embedded=False).egress.allow == []
    assert StorageSettings().for_server(embedded=True).egress.allow == ["loopback", "private"]
    chosen = StorageSettings.model_validate({"egress": {"allow": ["10.0.0.0/8"]}})
    assert chosen.for_server(embedded=True).egress.allow == ["10.0.0.0/8"]
    # What a Slurm worker gets (the job document): the server's resolved policy.
    shipped = StorageSettings().for_server(embedded=False).model_dump(mode="json")
    assert StorageSettings.model_validate(shipped).egress.allow == []


@pytest.fixture
def ctx() -> Iterator[StageContext]:
    with ThreadPoolExecutor(2) as pool:
        yield StageContext(pool=pool, attempts=1)


@pytest.mark.parametrize("scheme", ["http", "webdav"])
def test_a_loopback_connection_is_refused_when_it_is_made(
    scheme: str, recorder: Recorder, ctx: StageContext, tmp_path: Path
) -> None:
    # What a Slurm worker does with the URL: no creation-time check in between.
    storage = (HttpStorage if scheme == "http" else WebdavStorage)(_shared())
    url = f"{scheme}://127.0.0.1:{recorder.port}/x"
    with pytest.raises(StagingError, match=r"127\.0\.0\.1, a loopback address.*egress\.allow"):
        storage.fetch(url, tmp_path / "x", "FILE", ctx)
    assert recorder.requests == []
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("scheme", ["http", "webdav"])
def test_a_name_that_resolves_to_loopback_after_creation_gets_nowhere(
    scheme: str,
    recorder: Recorder,
    ctx: StageContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from toolship.storage.egress import EgressPolicy

    url = f"{scheme}://rebind.example:{recorder.port}/x"
    policy = EgressPolicy.of(_shared().egress.allow)
    policy.check_url(url, resolve=lambda host: ["93.184.216.34"])  # public at creation
    real = socket.getaddrinfo

    def rebound(host: Any, *args: Any, **kwargs: Any) -> Any:  # ...and loopback later
        return real("127.0.0.1" if host == "rebind.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    storage = (HttpStorage if scheme == "http" else WebdavStorage)(_shared())
    with pytest.raises(StagingError, match=r"rebind\.example resolves to 127\.0\.0\.1"):
        storage.fetch(url, tmp_path / "x", "FILE", ctx)
    assert recorder.requests == []


def test_address_classes() -> None:
    from toolship.storage.egress import EgressPolicy, address_class

    assert address_class("169.254.169.254") == "link-local"
    assert address_class("fe80::1%eth0") == "link-local"
    for loopback in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1",
                     "2002:7f00:1::"):  # fmt: skip
        assert address_class(loopback) == "loopback", loopback
    for private in ("10.1.2.3", "172.31.0.1", "192.168.0.1", "100.64.0.1", "fd00::1"):
        assert address_class(private) == "private", private
    assert address_class("0.0.0.0") == "unspecified"
    assert address_class("::") == "unspecified"
    assert address_class("224.0.0.1") == "multicast"
    assert address_class("255.255.255.255") == "reserved"
    for public in ("93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"):
        assert address_class(public) is None, public
    policy = EgressPolicy.of(["loopback", "10.1.0.0/16", "dav.internal"])
    assert policy.refusal("127.0.0.1", "127.0.0.1") is None
    assert policy.refusal("10.1.2.3", "10.1.2.3") is None
    assert policy.refusal("dav.internal", "10.9.9.9") is None
    assert "a private-network address" in str(policy.refusal("x.example", "10.9.9.9"))


def test_an_allow_entry_that_is_nothing_known_is_refused_at_start() -> None:
    from toolship.config import load_settings
    from toolship.errors import ConfigError

    with pytest.raises(ConfigError, match=r"storage\.egress\.allow: 'lo0pback!'"):
        load_settings(storage={"egress": {"allow": ["lo0pback!"]}})
