"""A TCP link the test can cut: the network between compute nodes' workers and the server.

The workers reach the server through :class:`Link` (``slurm.server_url`` names it).
:meth:`Link.cut` drops the traffic as a failed switch or a firewall's DROP does: nothing
is refused or reset, bytes sent either way vanish, and connections opened meanwhile are
accepted and left silent, so a worker's request hangs until it times out.  At
:meth:`Link.restore` the connections that lived through the cut are reset (TCP gives up
on them) and new ones pass again.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.integration.servers import free_port


class _Pair:
    """One client connection and, while the link was up when it came, the server's."""

    def __init__(self, client: socket.socket, server: socket.socket | None) -> None:
        self.client, self.server = client, server
        self.dead = server is None  # traffic vanishes; reset at restore

    def close(self) -> None:
        for sock in (self.client, self.server):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


class Link:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target`` (set once the server listens)."""

    def __init__(self) -> None:
        self.target: int | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._cut = False
        self._closed = False
        self.connections = 0  # accepted, cut or not: a worker tried while cut
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            for pair in self._pairs:
                pair.dead = True

    def restore(self) -> None:
        with self._lock:
            self._cut = False
            dead = [p for p in self._pairs if p.dead]
            self._pairs = [p for p in self._pairs if not p.dead]
        for pair in dead:
            pair.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                cut = self._cut
            server = None
            if not cut and self.target is not None:
                try:
                    server = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                    server.settimeout(None)
                except OSError:
                    client.close()  # the server itself is down: as without the link
                    continue
            elif not cut:
                client.close()
                continue
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair, True), daemon=True).start()
            if server is not None:
                threading.Thread(target=self._pump, args=(pair, False), daemon=True).start()

    def _pump(self, pair: _Pair, upstream: bool) -> None:
        source = pair.client if upstream else pair.server
        assert source is not None
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                break
            if not data:
                break
            if pair.dead:
                continue  # dropped on the floor
            sink = pair.server if upstream else pair.client
            try:
                assert sink is not None
                sink.sendall(data)
            except OSError:
                break
        if not pair.dead:  # an end closed its side: close the other, as TCP would
            pair.close()
