"""A server killed with kill -9 resumes its task; it never stages the inputs again.

Issue 12, item 3: the executor rewrites an input that is also declared as an
output.  Whichever phase the server dies in (staging, running, delivering
outputs), the restarted server delivers the executor's bytes, never a fresh
copy of the input; and an executor that replaced the input by a symbolic link
to a host file never gets that host file overwritten.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers import free_port, http_server, webdav
from tests.security.crashing import (
    Server,
    details,
    serve,
    submit,
    system_logs,
    wait_final,
    wait_for,
)

ORIGINAL = "original input\n"
EXECUTOR = "written by the executor\n"
SECRET = "host secret: never overwritten\n"
WAIT_FOR_GO = "while [ ! -e /work/go ]; do sleep 0.05; done"


class Gate:
    """A loopback TCP proxy that holds every connection until it is opened.

    ``open()`` drops the connections held so far (they belong to the server that was
    killed) and lets every later one through.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.opened = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.opened.is_set():
                self.held.append(client)
                continue
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            client.close()
            return
        with client, upstream:
            back = threading.Thread(target=self._pipe, args=(upstream, client), daemon=True)
            back.start()
            self._pipe(client, upstream)
            back.join(60)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def open(self) -> None:
        self.opened.set()
        for conn in self.held:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self.listener.close()
        self.open()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, busybox: str) -> Iterator[Server]:
    yield from serve(tmp_path_factory.mktemp("home"), busybox)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[Gate, Path]]:
    """A plain HTTP server behind a gate, and the folder it serves."""
    root = tmp_path / "www"
    root.mkdir()
    port = free_port()
    process = http_server(root, port, tmp_path / "http.log")
    process.start()
    gate = Gate(port)
    try:
        yield gate, root
    finally:
        gate.close()
        process.stop()


@pytest.fixture
def dav(tmp_path: Path) -> Iterator[tuple[Gate, Path]]:
    """A WebDAV server behind a gate, and its folder."""
    root = tmp_path / "dav"
    root.mkdir()
    port = free_port()
    process = webdav(root, port, tmp_path / "webdav.log")
    process.start()
    gate = Gate(port)
    try:
        yield gate, root
    finally:
        gate.close()
        process.stop()


def task(busybox: str, script: str, delivered: Path, **extra: Any) -> dict[str, Any]:
    """An executor that rewrites its input /work/in.txt, which is also an output."""
    return {
        "inputs": [{"path": "/work/in.txt", "content": ORIGINAL}, *extra.get("inputs", [])],
        "outputs": [{"path": "/work/in.txt", "url": f"file://{delivered}"},
                    *extra.get("outputs", [])],
        "executors": [{"image": busybox, "command": ["sh", "-c", script], "workdir": "/work"}],
    }  # fmt: skip


def root_of(server: Server, task_id: str) -> Path | None:
    attempt_dir = details(server, task_id).get("attempt_dir")
    return Path(attempt_dir) / "root" if attempt_dir else None


def test_killed_while_staging(
    server: Server, busybox: str, tmp_path: Path, web: tuple[Gate, Path]
) -> None:
    gate, www = web
    (www / "slow.txt").write_text("slow input\n")
    delivered = tmp_path / "delivered.txt"
    slow = {"path": "/work/slow.txt", "url": f"http://127.0.0.1:{gate.port}/slow.txt"}
    doc = task(busybox, f"cat slow.txt > /dev/null && echo -n '{EXECUTOR}' > in.txt", delivered,
               inputs=[slow])  # fmt: skip
    task_id = submit(server, doc)
    wait_for("the input download starting", lambda: gate.held)
    server.kill()
    gate.open()
    server.start()
    done = wait_final(server, task_id)
    assert done["state"] == "COMPLETE", system_logs(done)
    assert delivered.read_text() == EXECUTOR


def test_killed_while_the_executor_runs(server: Server, busybox: str, tmp_path: Path) -> None:
    delivered = tmp_path / "delivered.txt"
    task_id = submit(server, task(busybox, f"echo -n '{EXECUTOR}' > in.txt; {WAIT_FOR_GO}",
                                  delivered))  # fmt: skip

    def rewritten() -> Path | None:
        root = root_of(server, task_id)
        with contextlib.suppress(OSError):
            if root is not None and (root / "work" / "in.txt").read_text() == EXECUTOR:
                return root
        return None

    root = wait_for("the executor rewriting its input", rewritten)
    server.kill()
    server.start()
    (root / "work" / "go").touch()
    done = wait_final(server, task_id)
    assert done["state"] == "COMPLETE", system_logs(done)
    assert delivered.read_text() == EXECUTOR
    assert len(done["logs"][-1]["logs"]) == 1  # the executor ran once


def test_killed_while_an_input_is_a_link_to_a_host_file(
    server: Server, busybox: str, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text(SECRET)
    delivered = tmp_path / "delivered.txt"
    script = f"rm in.txt; ln -s {victim} in.txt; {WAIT_FOR_GO}"
    task_id = submit(server, task(busybox, script, delivered))

    def linked() -> Path | None:
        root = root_of(server, task_id)
        return root if root is not None and (root / "work" / "in.txt").is_symlink() else None

    root = wait_for("the executor replacing its input by a link", linked)
    server.kill()
    server.start()
    (root / "work" / "go").touch()
    done = wait_final(server, task_id)
    assert victim.read_text() == SECRET, "the host file behind the link was overwritten"
    assert done["state"] in ("SYSTEM_ERROR", "EXECUTOR_ERROR"), system_logs(done)
    assert "/work/in.txt" in system_logs(done)
    assert not delivered.exists()


def test_killed_while_delivering_outputs(
    server: Server, busybox: str, tmp_path: Path, dav: tuple[Gate, Path]
) -> None:
    gate, dav_root = dav
    delivered = tmp_path / "delivered.txt"
    doc = task(busybox, f"echo -n '{EXECUTOR}' > in.txt", delivered,
               outputs=[{"path": "/work/in.txt",
                         "url": f"webdav://127.0.0.1:{gate.port}/delivered.txt"}])  # fmt: skip
    task_id = submit(server, doc)
    wait_for(
        "the upload starting",
        lambda: gate.held and details(server, task_id).get("phase") == "outputs",
    )
    server.kill()
    gate.open()
    server.start()
    done = wait_final(server, task_id)
    assert done["state"] == "COMPLETE", system_logs(done)
    assert delivered.read_text() == EXECUTOR
    assert (dav_root / "delivered.txt").read_text() == EXECUTOR
