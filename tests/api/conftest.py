"""The API in-process: the real FastAPI app, engine and SQLite store, and a fake backend.

No podman, no server subprocess: the app runs (with its lifespan, so the engine
starts and stops as in ``toolship serve``) on an event loop in a thread of its own,
and an ``httpx.Client`` reaches it through httpx's ASGI transport.  Attempts end as
their commands say (see toolship.compute.fake); time moves only when a test advances
``server.clock``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from toolship.api.app import create_app
from toolship.catalog.fake import FakeImages
from toolship.compute import BackendFactory
from toolship.compute.fake import FakeBackend, FakeClock
from toolship.config import Settings
from toolship.provenance.sbom_fake import FakeScanner
from toolship.web import install as install_ui

TES = "/ga4gh/tes/v1"
TASKS = f"{TES}/tasks"
BATCHES = "/api/v1/batches"
TOKEN = "api-test-token"
T = TypeVar("T")


class InProcess:
    """The app on an event loop in a thread of its own, its lifespan entered, as a server.

    (Starlette's httpx.Client does the same, but wants the httpx2 package from now on.)
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="app", daemon=True)
        self._lifespan: AbstractAsyncContextManager[Any] | None = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.call(self._lifespan.__aenter__())

    def stop(self) -> None:
        """Leave the lifespan (the engine stops as on SIGTERM), then end the loop."""
        try:
            if self._lifespan is not None:
                self.call(self._lifespan.__aexit__(None, None, None))
        finally:
            self.call(self._cancel_the_rest())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()

    async def _cancel_the_rest(self) -> None:
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


class _Bridge(httpx.BaseTransport):
    """A synchronous transport that hands each request to the app on its own loop."""

    def __init__(self, server: InProcess) -> None:
        self.server = server
        self.asgi = httpx.ASGITransport(app=server.app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # Read here, in the caller's thread; a streamed body stays streamed (no length).
        chunks = list(request.stream)  # type: ignore[arg-type]
        inner = httpx.Request(
            request.method, request.url, headers=request.headers, stream=_Chunks(chunks)
        )

        async def call() -> tuple[int, httpx.Headers, bytes]:
            response = await self.asgi.handle_async_request(inner)
            return response.status_code, response.headers, await response.aread()

        status, headers, content = self.server.call(call())
        return httpx.Response(status, headers=headers, content=content)


@dataclass
class Server:
    """One home and database, served by as many app lifetimes as a test starts."""

    home: Path
    clock: FakeClock = field(default_factory=FakeClock)
    config: dict[str, Any] = field(default_factory=dict)
    embedded: bool = False
    tokens: list[str] = field(default_factory=lambda: [TOKEN])
    backends: list[FakeBackend] = field(default_factory=list)
    images: FakeImages = field(default_factory=FakeImages)  # the catalog's images, in memory
    scanner: FakeScanner = field(default_factory=FakeScanner)  # SBOMs without syft

    @property
    def fake(self) -> FakeBackend:
        """The backend of the app started last."""
        return self.backends[-1]

    def settings(self) -> Settings:
        return Settings(home=self.home, **self.config)

    @contextmanager
    def run(
        self, real: BackendFactory | None = None, *, listen: bool = False, **backend: Any
    ) -> Iterator[httpx.Client]:
        """Start the app on this home (the engine recovers what the database holds).

        A fake backend (``backend``: its capacity), or the ``real`` one a factory builds.
        ``listen``: it also serves HTTP on a port of loopback, its ``server.advertise_url``
        (another replica forwards requests there).
        """
        if real is None:
            fake = FakeBackend(clock=self.clock, **backend)
            self.backends.append(fake)
            real = fake.factory()
        settings = self.settings()
        sock = None
        if listen:
            sock = socket.create_server(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            server = settings.server.model_copy(update={"advertise_url": url})
            settings = settings.model_copy(update={"server": server})
        app = create_app(
            settings,
            tokens=self.tokens,
            embedded=self.embedded,
            backend=real,
            images=self.images.factory(),
            scanner=self.scanner,
        )
        install_ui(app, settings)  # the web UI, as toolship serve has it
        headers = {"Authorization": f"Bearer {self.tokens[0]}"} if self.tokens else {}
        served = InProcess(app)
        served.start()
        try:
            with (
                _listening(served, sock),
                httpx.Client(
                    transport=_Bridge(served), base_url="http://toolship.test", headers=headers
                ) as client,
            ):
                yield client
        finally:
            served.stop()


@contextmanager
def _listening(served: InProcess, sock: socket.socket | None) -> Iterator[None]:
    """uvicorn serving the app on ``sock`` (if any), on its loop; its lifespan is served's."""
    if sock is None:
        yield
        return
    config = uvicorn.Config(served.app, lifespan="off", log_level="warning", access_log=False)
    http = uvicorn.Server(config)
    serving = asyncio.run_coroutine_threadsafe(http.serve(sockets=[sock]), served.loop)
    try:
        until("uvicorn serving", lambda: http.started or serving.done())
        yield
    finally:
        http.should_exit = True
        serving.result(30)
        sock.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Server]:
    """A home, and its database: SQLite in the home (the embedded default), or a
    PostgreSQL database of the test's own — every API test runs on both."""
    for key in list(os.environ):
        if key.startswith("TOOLSHIP_"):
            monkeypatch.delenv(key)
    served = Server(home=tmp_path / "home")
    if request.param == "sqlite":
        yield served
        return
    postgres = request.getfixturevalue("postgres")
    url = postgres.fresh()
    served.config["database"] = {"url": url}
    yield served
    postgres.drop(url)


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.run() as client:
        yield client


@pytest.fixture
def fake(server: Server, api: httpx.Client) -> FakeBackend:
    return server.fake


def task(*command: str, **extra: Any) -> dict[str, Any]:
    """A TES task of one executor (the fake backend reads how it ends from ``command``)."""
    return {"executors": [{"image": "busybox", "command": list(command or ("true",))}], **extra}


def create(api: httpx.Client, *command: str, **extra: Any) -> str:
    r = api.post(TASKS, json=task(*command, **extra))
    assert r.status_code == 200, r.text
    task_id: str = r.json()["id"]
    return task_id


def get(api: httpx.Client, task_id: str, view: str = "FULL") -> dict[str, Any]:
    r = api.get(f"{TASKS}/{task_id}", params={"view": view})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def wait(api: httpx.Client, task_id: str) -> str:
    """The task's final state (the server's own wait route)."""
    r = api.get(f"/api/v1/tasks/{task_id}/wait", params={"timeout": 10})
    assert r.json()["final"], r.text
    state: str = r.json()["state"]
    return state


def until(what: str, check: Callable[[], Any], timeout: float = 10) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(0.005)


def state_of(api: httpx.Client, task_id: str) -> str:
    return str(get(api, task_id, "MINIMAL")["state"])


def running(api: httpx.Client, fake: FakeBackend, *task_ids: str) -> None:
    """Wait until these tasks are RUNNING and their executors sleep on the fake clock."""
    until(f"{task_ids} running", lambda: all(state_of(api, t) == "RUNNING" for t in task_ids))
    until(f"{task_ids} waiting for the clock", lambda: set(task_ids) <= set(fake.sleeping()))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """FastAPI 0.165 hands pydantic an ``Annotated[Model, Body(alias=…)]`` to validate a
    request body, and pydantic warns that the alias has no effect there.  A server in a
    subprocess never shows it; in process, the suite's warnings-as-errors would turn every
    POST into a failure.  Only that warning is let through, only for these tests."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(
                pytest.mark.filterwarnings(
                    "ignore:The 'alias' attribute with value:"
                    "pydantic.warnings.UnsupportedFieldAttributeWarning"
                )
            )
