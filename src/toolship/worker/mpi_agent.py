"""MPI's launcher across toolship's ranks (backend parameter mpi=launcher).  Every rank runs
``mpi-agent --launch CMD…``:

* rank 0 listens on TOOLSHIP_MPI_PORT (the *hub*) and runs CMD (mpirun …);
* every rank r > 0 connects to rank 0 at TOOLSHIP_MAIN_ADDR (the *agent*), then runs the
  commands the hub sends it and streams their output and exit code back;
* Open MPI's rsh launcher calls ``mpi-agent HOST CMD…`` (OMPI_MCA_plm_rsh_agent) in rank
  0's container to start its daemon on HOST: a host of the hostfile.  Rank 0's own host
  runs CMD right there; another rank's goes to the hub, which sends it to that rank's agent.

Every connection proves it holds the attempt's secret (/toolship/mpi-secret) and checks
that the other side does too (HMAC over both sides' nonces), so nothing else on the
network can join, or send an agent commands.  The hub ends when CMD has ended and every
agent has been told to leave; an agent ends when the hub tells it to, or goes away.

It runs in the user's image, by its python3 (3.8 or later): standard library only, one
file, imported by nothing of toolship's but its tests (ranks.py mounts it).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

SECRET_FILE = "/toolship/mpi-secret"  # noqa: S105 (where the secret is, not it)
MAGIC = b"TSMPI1"
NONCE = 16
MAC = 32
HEADER = struct.Struct(">BII")  # kind, session, payload length
MAX_FRAME = 1 << 20
# Frame kinds.  Agent -> hub: HELLO (JSON: role, rank); hub -> agent: START (the command),
# KILL, BYE; agent -> hub -> rsh call: OUT, ERR, EXIT (the code, as text).  FAIL: the hub
# tells an rsh call why it cannot run (the text is printed as it is).
HELLO, START, KILL, BYE, OUT, ERR, EXIT, FAIL = range(1, 9)
JOIN_SECONDS = 120.0  # how long rank 0 and the other ranks wait for each other


class AgentError(Exception):
    """Something the user must fix; the text says what and how."""


# --- framing and the handshake (shared by every role) -------------------------------------


def send_frame(sock: socket.socket, kind: int, session: int, payload: bytes = b"") -> None:
    sock.sendall(HEADER.pack(kind, session, len(payload)) + payload)


def read_exact(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes, or b"" when the other side closed first."""
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            return b""
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> tuple[int, int, bytes] | None:
    """The next frame, or None when the connection ended."""
    header = read_exact(sock, HEADER.size)
    if not header:
        return None
    kind, session, length = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise AgentError(f"toolship mpi agent: a frame of {length} bytes is too large")
    payload = read_exact(sock, length) if length else b""
    if length and not payload:
        return None
    return kind, session, payload


def _mac(secret: bytes, side: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return hmac.new(secret, side + server_nonce + client_nonce, hashlib.sha256).digest()


def accept_handshake(sock: socket.socket, secret: bytes) -> dict[str, object] | None:
    """The server's side: the client's HELLO if it proved the secret, else None."""
    server_nonce = os.urandom(NONCE)
    sock.sendall(MAGIC + server_nonce)
    proof = read_exact(sock, NONCE + MAC)
    if not proof:
        return None
    client_nonce, mac = proof[:NONCE], proof[NONCE:]
    if not hmac.compare_digest(mac, _mac(secret, b"client", server_nonce, client_nonce)):
        return None
    sock.sendall(_mac(secret, b"server", server_nonce, client_nonce))
    frame = read_frame(sock)
    if frame is None or frame[0] != HELLO:
        return None
    hello = json.loads(frame[2].decode())
    return hello if isinstance(hello, dict) else None


def offer_handshake(sock: socket.socket, secret: bytes, hello: dict[str, object]) -> None:
    """The client's side: prove the secret, check the server's proof, say hello."""
    greeting = read_exact(sock, len(MAGIC) + NONCE)
    if greeting[: len(MAGIC)] != MAGIC:
        raise AgentError("toolship mpi agent: what answers at rank 0's port is not the hub")
    server_nonce, client_nonce = greeting[len(MAGIC) :], os.urandom(NONCE)
    sock.sendall(client_nonce + _mac(secret, b"client", server_nonce, client_nonce))
    answer = read_exact(sock, MAC)
    if not hmac.compare_digest(answer, _mac(secret, b"server", server_nonce, client_nonce)):
        raise AgentError(
            "toolship mpi agent: the hub at rank 0's port did not prove this task's secret "
            "(another task's, or something else, listens there)"
        )
    send_frame(sock, HELLO, 0, json.dumps(hello).encode())


# --- the setting every role reads ---------------------------------------------------------


class Setting:
    """What toolship gave this rank: rank, rank 0's address, the port, the hosts, the secret."""

    def __init__(self, env: dict[str, str], secret_file: str = SECRET_FILE) -> None:
        try:
            self.rank = int(env["TOOLSHIP_NODE_RANK"])
            self.main_addr = env["TOOLSHIP_MAIN_ADDR"]
            self.port = int(env["TOOLSHIP_MPI_PORT"])
            hostfile = env["TOOLSHIP_HOSTFILE"]
        except (KeyError, ValueError) as exc:
            raise AgentError(
                f"toolship mpi agent: {exc} is missing from the environment; it runs in the "
                "ranks of a task with backend parameter mpi=launcher, which sets it"
            ) from None
        words = (line.split() for line in Path(hostfile).read_text().splitlines())
        self.hosts = [w[0] for w in words if w]
        self.secret = Path(secret_file).read_bytes().strip()

    def rank_of(self, host: str) -> int:
        if host in self.hosts:
            return self.hosts.index(host)
        raise AgentError(
            f"toolship: mpirun asked to start a process on {host!r}, which is not a node of "
            f"this task (its hostfile, $TOOLSHIP_HOSTFILE, names {', '.join(self.hosts)}): "
            "give mpirun --hostfile $TOOLSHIP_HOSTFILE, or those names with --host"
        )


# --- rank 0: the hub ------------------------------------------------------------------------


class Hub:
    """Rank 0's side: agents join it; rsh calls ask it to run a command on an agent."""

    def __init__(self, setting: Setting, join_seconds: float = JOIN_SECONDS) -> None:
        self.setting = setting
        self.join_seconds = join_seconds
        self.lock = threading.Condition()
        self.agents: dict[int, socket.socket] = {}
        self.sending: dict[int, threading.Lock] = {}  # one writer at a time per agent
        # session -> (the rsh call's connection, the agent's rank)
        self.sessions: dict[int, tuple[socket.socket, int]] = {}
        self.next_session = 1
        try:
            self.listener = socket.create_server(("", setting.port))
        except OSError as exc:
            raise AgentError(
                f"toolship: rank 0 cannot listen on port {setting.port} for the other ranks' "
                f"agents ({exc.strerror}): something else on its node holds it; submit the "
                "task again (toolship picks a free port for each attempt)"
            ) from None
        self.closing = False

    def serve(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._greet, args=(conn,), daemon=True).start()

    def _greet(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            hello = accept_handshake(conn, self.setting.secret)
            conn.settimeout(None)
        except (OSError, ValueError):
            hello = None
        if hello is None:
            conn.close()
            return
        rank = hello.get("rank")
        if hello.get("role") == "agent" and isinstance(rank, int):
            self._agent(conn, rank)
        elif hello.get("role") == "run":
            self._run(conn, str(hello.get("host")), str(hello.get("command")))
        else:
            conn.close()

    def _agent(self, conn: socket.socket, rank: int) -> None:
        with self.lock:
            if self.closing or rank in self.agents or not 0 < rank < len(self.setting.hosts):
                conn.close()
                return
            self.agents[rank] = conn
            self.sending[rank] = threading.Lock()
            self.lock.notify_all()
        while True:  # relay the agent's frames to the rsh calls they belong to
            try:
                frame = read_frame(conn)
            except (OSError, AgentError):
                frame = None
            if frame is None:
                conn.close()
                break
            kind, session, payload = frame
            with self.lock:
                caller = self.sessions.get(session, (None, 0))[0]
            if caller is not None:
                with contextlib.suppress(OSError):
                    send_frame(caller, kind, 0, payload)
        with self.lock:
            lost = [c for c, r in self.sessions.values() if r == rank]
        for caller in lost:  # the agent went away: its calls end
            with contextlib.suppress(OSError):
                send_frame(caller, FAIL, 0, f"toolship: rank {rank}'s agent went away".encode())

    def wait_agent(self, rank: int) -> socket.socket | None:
        deadline = time.monotonic() + self.join_seconds
        with self.lock:
            while rank not in self.agents:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(left)
            return self.agents[rank]

    def _run(self, caller: socket.socket, host: str, command: str) -> None:
        try:
            rank = self.setting.rank_of(host)
        except AgentError as exc:
            send_frame(caller, FAIL, 0, str(exc).encode())
            caller.close()
            return
        agent = self.wait_agent(rank)
        if agent is None:
            send_frame(caller, FAIL, 0, not_joined(self.setting, rank, self.join_seconds))
            caller.close()
            return
        with self.lock:
            session = self.next_session
            self.next_session += 1
            self.sessions[session] = (caller, rank)
        self.tell(rank, START, session, command.encode())
        try:  # the caller sends nothing; its end (mpirun killed it) kills the command
            while caller.recv(4096):
                pass
        except OSError:
            pass
        with self.lock:
            self.sessions.pop(session, None)
        self.tell(rank, KILL, session)
        caller.close()

    def tell(self, rank: int, kind: int, session: int, payload: bytes = b"") -> None:
        with self.lock:
            agent, sending = self.agents[rank], self.sending[rank]
        with sending, contextlib.suppress(OSError):
            send_frame(agent, kind, session, payload)

    def close(self) -> None:
        """Tell every agent to leave, waiting for those that have not joined yet."""
        for rank in range(1, len(self.setting.hosts)):
            if self.wait_agent(rank) is not None:
                self.tell(rank, BYE, 0)
        with self.lock:
            self.closing = True
        self.listener.close()


def not_joined(setting: Setting, rank: int, seconds: float) -> bytes:
    return (
        f"toolship: rank {rank} ({setting.hosts[rank]}) did not join rank 0 within "
        f"{seconds:.0f} s: its container did not start, or cannot reach rank 0 at "
        f"{setting.main_addr}:{setting.port}; see its output (toolship logs ID --rank {rank})"
    ).encode()


def launch(setting: Setting, argv: list[str]) -> int:
    """Rank 0: the hub, and the user's command; the exit code is the command's."""
    hub = Hub(setting)
    hub.serve()
    # Open MPI's rsh launcher reads the local shell from $SHELL (unset in most containers:
    # "WARNING: local probe returned unhandled shell:unknown"); the agents run sh.
    env = {**os.environ, "SHELL": os.environ.get("SHELL") or "/bin/sh"}
    try:
        child = subprocess.Popen(argv, env=env)
    except OSError as exc:
        print(
            f"toolship: rank 0 cannot run {argv[0]!r} ({exc.strerror}): is it in the image, "
            "on its PATH?",
            file=sys.stderr,
        )
        hub.close()
        return 127
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # PID 1 passes them on
        signal.signal(signum, lambda s, _f: child.send_signal(s))
    code = child.wait()
    hub.close()
    return 128 - code if code < 0 else code


# --- ranks > 0: the agent ----------------------------------------------------------------


def connect(setting: Setting, hello: dict[str, object], seconds: float) -> socket.socket:
    """A connection to the hub, retried until it listens or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            sock = socket.create_connection((setting.main_addr, setting.port), timeout=30)
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                raise AgentError(
                    f"toolship: rank {setting.rank} cannot reach rank 0 at {setting.main_addr}:"
                    f"{setting.port} ({exc.strerror or exc}) after {seconds:.0f} s: rank 0's "
                    "command ended or never started (see its output), or the ranks' network "
                    "does not let them meet"
                ) from None
            time.sleep(0.2)
    try:
        offer_handshake(sock, setting.secret, hello)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return sock


def serve_agent(setting: Setting, seconds: float = JOIN_SECONDS) -> int:
    """Rank r > 0: run what the hub sends until it says bye or goes away."""
    hub = connect(setting, {"role": "agent", "rank": setting.rank}, seconds)
    sending = threading.Lock()
    running: dict[int, subprocess.Popen[bytes]] = {}

    def send(kind: int, session: int, payload: bytes = b"") -> None:
        with sending, contextlib.suppress(OSError):
            send_frame(hub, kind, session, payload)

    while True:
        try:
            frame = read_frame(hub)
        except (OSError, AgentError):
            frame = None
        if frame is None or frame[0] == BYE:
            break
        kind, session, payload = frame
        if kind == START:
            child = subprocess.Popen(
                ["/bin/sh", "-c", payload.decode()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            running[session] = child
            threading.Thread(target=_relay, args=(child, session, send), daemon=True).start()
        elif kind == KILL and session in running:
            _kill(running.pop(session))
    for child in running.values():
        _kill(child)
    hub.close()
    return 0


Send = Callable[[int, int, bytes], None]


def _relay(child: subprocess.Popen[bytes], session: int, send: Send) -> None:
    """Stream the command's stdout and stderr to the hub, then its exit code."""
    with child:  # closes the pipes, waits
        pumps = [
            threading.Thread(target=_pump, args=(stream, kind, session, send))
            for stream, kind in ((child.stdout, OUT), (child.stderr, ERR))
        ]
        for p in pumps:
            p.start()
        for p in pumps:
            p.join()
    code = child.returncode
    send(EXIT, session, str(128 - code if code < 0 else code).encode())


def _pump(stream: BinaryIO, kind: int, session: int, send: Send) -> None:
    while data := stream.read1(65536):  # type: ignore[attr-defined]
        send(kind, session, data)


def _kill(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        with contextlib.suppress(OSError):
            os.killpg(child.pid, signal.SIGTERM)


# --- rank 0: Open MPI's rsh call ---------------------------------------------------------


def rsh(setting: Setting, host: str, words: list[str]) -> int:
    """Run ``words`` on ``host`` as ssh would (one shell line), with its output and code."""
    command = " ".join(words)
    rank = setting.rank_of(host)
    if rank == setting.rank:
        os.execv("/bin/sh", ["sh", "-c", command])  # noqa: S606 (ssh runs it in a shell too)
    with connect(setting, {"role": "run", "host": host, "command": command}, 10) as hub:
        return _relay_call(hub, host, words[0])


def _relay_call(hub: socket.socket, host: str, what: str) -> int:
    """Write what the hub relays from ``host`` to this process's stdout and stderr."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    while True:
        frame = read_frame(hub)
        if frame is None:
            raise AgentError(f"toolship: rank 0's hub went away while {host} ran {what}")
        kind, _, payload = frame
        if kind in (OUT, ERR):
            stream = out if kind == OUT else err
            stream.write(payload)
            stream.flush()
        elif kind == EXIT:
            return int(payload.decode())
        elif kind == FAIL:
            raise AgentError(payload.decode())


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(
            "usage: mpi-agent --launch COMMAND... (every rank) | mpi-agent HOST COMMAND... "
            "(Open MPI's plm_rsh_agent)",
            file=sys.stderr,
        )
        return 2
    try:
        setting = Setting(dict(os.environ))
        if argv[0] == "--launch":
            if setting.rank == 0:
                return launch(setting, argv[1:])
            return serve_agent(setting)
        return rsh(setting, argv[0], argv[1:])
    except (AgentError, OSError) as exc:
        print(str(exc), file=sys.stderr)
        return 255


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
