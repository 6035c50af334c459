"""A real embedded server that tests can kill -9 and start again, and a health watch.

Shared by the path and resume tests: tasks there misbehave on purpose, so the
server is watched from outside (its health endpoint, with a deadline) and
killed for real at the end if it stops answering.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from toolship.embedded import EmbeddedServer, _running, ensure_server, stop_server
from toolship.states import FINAL_STATES

TES = "/ga4gh/tes/v1"
FINAL = {state.value for state in FINAL_STATES}


@dataclass
class Server:
    """An embedded server; ``kill()`` then ``start()`` restart it as a crash would."""

    home: Path
    current: EmbeddedServer | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.current is not None, "the server is not running"
        return self.current.url

    def start(self, warm_up: str | None = None) -> EmbeddedServer:
        """Start (or find) the server; with an image, run one task first.

        A fresh server's first task creation loads code on its event loop (a few hundred
        ms): warming up keeps that out of the health measurements.
        """
        self.current = ensure_server(self.home)
        self.pids.append(self.current.pid)
        if warm_up is not None:
            doc = {"executors": [{"image": warm_up, "command": ["true"]}]}
            wait_final(self, submit(self, doc))
        return self.current

    def kill(self) -> None:
        """kill -9, and wait until the process is gone."""
        assert self.current is not None
        os.kill(self.current.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _running(self.current.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.current = None

    def client(self, timeout: float = 5) -> httpx.Client:
        assert self.current is not None
        return httpx.Client(
            base_url=self.current.url,
            headers={"Authorization": f"Bearer {self.current.token}"},
            timeout=timeout,
        )

    def stop(self) -> None:
        stop_server(self.home)
        for pid in self.pids:  # a server stuck on a FIFO answers nothing: kill it
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def serve(home: Path, warm_up: str) -> Iterator[Server]:
    """Start a server for ``home`` (with TOOLSHIP_HOME set), stop it for real afterwards."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOOLSHIP_HOME", str(home))
        mp.delenv("TOOLSHIP_SERVER", raising=False)
        mp.delenv("TOOLSHIP_TOKEN", raising=False)
        server = Server(home)
        server.start(warm_up)
        try:
            yield server
        finally:
            server.stop()


class HealthWatch:
    """Polls /api/v1/health from a thread and keeps the slowest answer (a miss counts 2 s)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(timeout=2.0) as c:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    ok = c.get(f"{self.url}/api/v1/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                took = time.perf_counter() - start if ok else 2.0
                self.worst = max(self.worst, took)
                self._stop.wait(0.02)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def submit(server: Server, doc: dict[str, Any]) -> str:
    with server.client() as c:
        task_id: str = c.post(f"{TES}/tasks", json=doc).raise_for_status().json()["id"]
    return task_id


def details(server: Server, task_id: str) -> dict[str, Any]:
    with server.client() as c:
        found: dict[str, Any] = c.get(f"/api/v1/tasks/{task_id}").raise_for_status().json()
    return found


def wait_final(server: Server, task_id: str, timeout: float = 90) -> dict[str, Any]:
    """The FULL task once final; a server that stops answering fails the test, never hangs it."""
    deadline = time.monotonic() + timeout
    with server.client() as c:
        while time.monotonic() < deadline:
            try:
                r = c.get(f"{TES}/tasks/{task_id}", params={"view": "FULL"})
            except httpx.HTTPError as exc:
                raise AssertionError(f"the server stopped answering ({exc!r})") from exc
            task: dict[str, Any] = r.json()
            if task["state"] in FINAL:
                return task
            time.sleep(0.05)
    raise AssertionError(f"task {task_id} is not final after {timeout:.0f}s")


def wait_for(what: str, check: Any, timeout: float = 60) -> Any:
    """Poll ``check()`` until it gives something true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s")


def system_logs(task: dict[str, Any]) -> str:
    return "\n".join(m for a in task.get("logs", []) for m in a.get("system_logs", []))
