"""Real storage servers on loopback for the tests: S3 (moto), HTTP, WebDAV, and a TCP
proxy that can be cut in the middle of a transfer, or drop all traffic for a while."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Process:
    """A server subprocess that is started, waited for, and always stopped."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.argv, self.port, self.log = argv, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=out)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def moto(port: int, log: Path) -> Process:
    return Process([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, log)


def http_server(root: Path, port: int, log: Path) -> Process:
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root),
            str(port)]  # fmt: skip
    return Process(argv, port, log)


def webdav(root: Path, port: int, log: Path) -> Process:
    argv = [str(BIN / "wsgidav"), "--host", "127.0.0.1", "--port", str(port), "--root",
            str(root), "--auth", "anonymous", "--server", "cheroot", "-q"]  # fmt: skip
    return Process(argv, port, log)


class Proxy:
    """A loopback TCP proxy to ``target`` (a port; it may be set after the start).

    ``cut()`` resets every connection and stops listening (connection refused).
    ``drop()`` fails the link as a broken switch or a firewall's DROP does: nothing is
    refused or reset, bytes sent either way vanish, connections opened meanwhile are
    accepted and left silent; ``restore()`` resets the connections that lived through it
    (TCP gives up on them) and lets new ones pass again.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.bytes = 0
        self._lock = threading.Lock()  # a connection is accepted before or in a drop
        self._dropping = False
        self._dropped: list[socket.socket] = []  # the connections that live through a drop
        self.held: list[socket.socket] = []  # accepted during a drop, never answered

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if self._dropping:  # the client waits for an answer, then gives up
                    self.held.append(client)
                    continue
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.target))
                except OSError:
                    client.close()
                    continue
                self._conns += [client, upstream]
            done = threading.Barrier(2, action=lambda c=client, u=upstream: (c.close(), u.close()))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b, done), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, done: threading.Barrier) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                if src in self._dropped:
                    continue  # sent while the link drops everything: gone
                self.bytes += len(data)
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        with contextlib.suppress(threading.BrokenBarrierError):
            done.wait(30)  # the second direction to finish closes both sockets

    def drop(self) -> None:
        with self._lock:
            self._dropped = list(self._conns)
            self._dropping = True

    def restore(self) -> None:
        with self._lock:
            for conn in [*self._dropped, *self.held]:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            for conn in self.held:
                conn.close()
            self._conns = [c for c in self._conns if c not in self._dropped]
            self._dropped, self.held = [], []
            self._dropping = False

    def cut(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._conns.clear()
