"""The keeper: one long-lived process that starts this host's executors and records their ends.

Without it, every executor cost a fork of the server and an ``sh`` wrapper that wrote
its exit code (and, for host processes of a root server, a ``setpriv`` to drop to the
task's user): three execs for a task that runs ``true``.  The keeper is a small
process of the standard library alone, started once by the server with one end of a
socket pair.  For each executor it calls ``posix_spawn`` (a vfork: no copy of the
keeper, let alone of the server), dropping to the task's user when asked; when the
command ends it writes the exit code to the executor's exit file and then tells the
server.  Every executor is in a session of its own, so stopping it is one signal to
its process group, as before.

The guarantees of the wrapper hold:

* A server killed with -9 closes its end of the socket; the keeper goes on, writes
  the exit files of the executors still running, and leaves once the last ended.  The
  restarted server finds each executor by its pid and exit file
  (:func:`toolship.runtime.launch.find_launched`): the executor's environment carries
  ``TOOLSHIP_EXIT_FILE``, so it is found by that even when its pid was never recorded.
* A keeper that dies leaves its executors running without anyone to record their
  codes: the server notices the closed socket, follows those executors by their pid
  until they are gone (an unknown result, as for a wrapper that was killed), and
  starts a new keeper for the next one.

Codes follow the shell's conventions, as the wrapper's did: 128 + N for an executor
killed by signal N; 127 (command not found) and 126 (found, not runnable) with the
reason on the executor's standard error.

This file runs as the keeper (``python -I -S keeper.py FD``): it imports nothing but
the standard library.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["MARKER", "Keeper", "KeeperLost", "alive", "follow", "read_exit_file"]

log = logging.getLogger(__name__)

MARKER = "TOOLSHIP_EXIT_FILE"  # in each executor's environment: a restart finds it by this
_MESSAGE = 1 << 20  # the largest request (argv and environment, JSON)
_CAP_VERSION_3 = 0x20080522
_POLL_SECONDS = 0.2
_KEEPER_ARGV = b"runtime/keeper.py\0"  # in a keeper's command line (``python -I -S …``)


class KeeperLost(OSError):
    """The keeper died (or was never started): this executor was not started."""


# --- the server's side --------------------------------------------------------------


class Keeper:
    """The server's handle on its keeper: started on first use, once per server process."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._pid: int | None = None  # the keeper's
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next = 0
        self._replies: dict[int, asyncio.Future[int | None]] = {}
        self._watchers: dict[int, Callable[[int | None], None]] = {}
        self._ended: dict[int, int] = {}  # exits told before anyone watched them
        self._running: dict[int, Path] = {}  # pid -> exit file, of this keeper's executors
        self._orphans: dict[int, Path] = {}  # those of a keeper that died, not yet watched

    def _start(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _MESSAGE * 2)
        with theirs:
            os.set_inheritable(theirs.fileno(), True)
            # Its own session: a signal to the server's process group leaves it running.
            self._pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", __file__, str(theirs.fileno())],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,
            )
        ours.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(ours.fileno(), self._readable)
        self._sock = ours
        return ours

    async def spawn(
        self,
        argv: list[str],
        *,
        cwd: Path | None,
        env: dict[str, str] | None,
        exit_file: Path,
        user: tuple[int, int] | None,
        stdin: int | None,
        stdout: int,
        stderr: int,
    ) -> int | None:
        """Start ``argv`` (``user``: as that uid:gid) and return its pid.

        None: it could not start (a missing command, a missing working directory); the
        keeper said why on its standard error and wrote its code (127, 126) to the exit
        file.
        """
        sock = self._start()
        self._next += 1
        request = {
            "id": self._next,
            "argv": argv,
            "cwd": None if cwd is None else str(cwd),
            "env": env,
            "exit_file": str(exit_file),
            "user": user,
            "stdin": stdin is not None,
        }
        fds = [stdout, stderr] if stdin is None else [stdout, stderr, stdin]
        reply: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._replies[self._next] = reply
        try:
            await self._send(sock, json.dumps(request).encode(), fds)
        except OSError as exc:
            del self._replies[self._next]
            if exc.errno == errno.EMSGSIZE:
                raise OSError(exc.errno, "the executor's command and environment are too large "
                              f"(over {_MESSAGE // 1024} KiB)") from exc  # fmt: skip
            self._lost()
            raise KeeperLost(errno.EPIPE, "the keeper of executors is gone") from exc
        pid = await reply
        if pid is not None:
            self._running[pid] = exit_file
        return pid

    async def _send(self, sock: socket.socket, data: bytes, fds: list[int]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                socket.send_fds(sock, [data], fds)
                return
            except BlockingIOError:  # the keeper is behind: wait until it read some
                writable: asyncio.Future[None] = loop.create_future()
                loop.add_writer(sock.fileno(), writable.set_result, None)
                try:
                    await writable
                finally:
                    loop.remove_writer(sock.fileno())

    def on_exit(self, pid: int, callback: Callable[[int | None], None]) -> None:
        """Call ``callback(exit code)`` once executor ``pid`` ended (None: unknown)."""
        code = self._ended.pop(pid, None)
        if code is not None:
            self._running.pop(pid, None)
            asyncio.get_running_loop().call_soon(callback, code)
        elif pid in self._running:
            self._watchers[pid] = callback
        else:  # started by a keeper that died since: followed by its pid
            self._follow(pid, self._orphans.pop(pid, None), callback)

    def close(self) -> None:
        """Let go of the keeper; it leaves once its executors ended (their codes recorded)."""
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
        self._sock = None
        if self._pid is not None:
            # It is this process's child: collect its end whenever that comes.
            threading.Thread(target=_collect, args=(self._pid,), daemon=True).start()
            self._pid = None

    def _readable(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            message = json.loads(data)
            if "id" in message:
                reply = self._replies.pop(message["id"], None)
                if reply is not None and not reply.done():
                    reply.set_result(message.get("pid"))  # none: it "exited" unstarted
                continue
            pid, code = message["pid"], message["code"]
            watcher = self._watchers.pop(pid, None)
            if watcher is None:
                self._ended[pid] = code
            else:
                self._running.pop(pid, None)
                watcher(code)

    def _lost(self) -> None:
        """The keeper died: its executors are followed by pid; the next spawn starts another."""
        if self._pid is not None:
            log.warning("the keeper of executors (pid %d) died; starting another for new "
                        "executors", self._pid)  # fmt: skip
        self.close()
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(KeeperLost(errno.EPIPE, "the keeper of executors died"))
        self._replies.clear()
        watchers, self._watchers = self._watchers, {}
        running, self._running = self._running, {}
        for pid, exit_file in running.items():
            if pid in watchers:
                self._follow(pid, exit_file, watchers[pid])
            else:
                self._orphans[pid] = exit_file

    @staticmethod
    def _follow(pid: int, exit_file: Path | None, callback: Callable[[int | None], None]) -> None:
        if exit_file is None:
            asyncio.get_running_loop().call_soon(callback, None)
            return
        waiter = asyncio.ensure_future(follow(pid, exit_file))
        waiter.add_done_callback(lambda w: callback(None if w.cancelled() else w.result()))


def _collect(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def read_exit_file(path: Path) -> int | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    if not text.endswith("\n"):
        return None  # still being written
    try:
        return int(text.strip())
    except ValueError:
        return None


def alive(pid: int, exit_file: Path) -> bool:
    """Is ``pid`` still the executor of ``exit_file`` (not a recycled pid of another
    program)?  An ``sh`` wrapper names the file in its command line, an executor of the
    keeper in its environment.  A keeper's executor that ended stays, a zombie, until
    its keeper wrote its code: it counts as alive until then, so whoever follows it by
    pid finds the code instead of an executor gone without one."""
    marker = str(exit_file).encode()
    proc = Path(f"/proc/{pid}")
    try:
        if marker in (proc / "cmdline").read_bytes():
            return True
        with contextlib.suppress(ProcessLookupError):  # a zombie's environment is gone
            if MARKER.encode() + b"=" + marker + b"\0" in (proc / "environ").read_bytes():
                return True
        return _recording(proc)
    except OSError:  # gone, not ours to read, or ended while read: not that executor
        return False


def _recording(proc: Path) -> bool:
    """Whether ``proc`` is a zombie whose parent is a keeper (writing its exit code)."""
    state, parent = proc.joinpath("stat").read_text().rpartition(")")[2].split()[:2]
    if state != "Z":
        return False
    return _KEEPER_ARGV in Path(f"/proc/{parent}/cmdline").read_bytes()


async def follow(pid: int, exit_file: Path) -> int | None:
    """The exit code of an executor that is not ours to wait for (started before a
    restart, or by a keeper that died): None if it vanished without one."""
    while True:
        code = read_exit_file(exit_file)
        if code is not None:
            return code
        if not alive(pid, exit_file):
            return read_exit_file(exit_file)
        await asyncio.sleep(_POLL_SECONDS)


# --- the keeper's side --------------------------------------------------------------


def _clear_inheritable_capabilities() -> None:
    """Root's inheritable capabilities, emptied once: no executor inherits any (what
    ``setpriv --inh-caps=-all`` did per executor)."""
    status = Path("/proc/self/status").read_text()
    line = next((ln for ln in status.splitlines() if ln.startswith("CapInh:")), "CapInh: 0")
    if int(line.split()[1], 16) == 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    data[2] = data[5] = 0  # the inheritable words of both halves
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


# Signals a host command must start with as the default, whatever the keeper does with them
# (Python ignores SIGPIPE and SIGXFSZ; the keeper handles SIGCHLD).
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT)


def _start(request: dict[str, Any], fds: list[int], home: str) -> int:
    """Start the executor in a session of its own; its pid.  OSError: it could not start.

    ``posix_spawn``: a vfork, no copy of the keeper.  To run as another user a root keeper
    makes that user its real one for the call, and the child takes its real ids as its
    effective ones before it execs (``resetids``); the exec makes them the saved ones
    too, and with no id 0 left the command has no capabilities.  The keeper dropped its
    supplementary groups and inheritable capabilities when it started.
    """
    argv: list[str] = request["argv"]
    env: dict[str, str] = dict(os.environ) if request["env"] is None else request["env"]
    env[MARKER] = request["exit_file"]
    out, err = fds[0], fds[1]
    stdin = fds[2] if request["stdin"] else None
    # The keeper has one thread: the executor starts where the keeper is (none given:
    # ``home``, not where the last executor started).
    os.chdir(request["cwd"] or home)
    # Looked up in the executor's own PATH, as a shell would.
    program = shutil.which(argv[0], path=env.get("PATH", os.defpath))
    if program is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)
        if stdin is None
        else (os.POSIX_SPAWN_DUP2, stdin, 0),
        (os.POSIX_SPAWN_DUP2, out, 1),
        (os.POSIX_SPAWN_DUP2, err, 2),
    ]
    user = request["user"]
    if user is None:
        return os.posix_spawn(
            program, argv, env, file_actions=actions, setsid=True, setsigdef=_DEFAULT_SIGNALS
        )
    uid, gid = user
    os.setresgid(gid, 0, 0)
    os.setresuid(uid, 0, 0)
    try:
        return os.posix_spawn(program, argv, env, file_actions=actions, setsid=True,
                              setsigdef=_DEFAULT_SIGNALS, resetids=True)  # fmt: skip
    finally:
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)


def _write_exit_file(path: str, code: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        print(f"toolship keeper: cannot record exit code {code} in {path}: {exc}", file=sys.stderr)
        return
    try:
        os.write(fd, f"{code}\n".encode())  # one write: a reader sees all of it or none
    finally:
        os.close(fd)


class _Keeping:
    """The keeper's loop: requests from the server, ends of its executors."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.open = True  # the server's end is open
        try:
            self.home = str(Path.cwd())  # where the server was when it started the keeper
        except OSError:
            self.home = "/"
        self.children: dict[int, str] = {}  # pid -> exit file
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_w)
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)

    def run(self) -> None:
        while self.open or self.children:
            for key, _ in self.selector.select():
                if key.fileobj is self.sock:
                    self.receive()
                else:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_r, 512):
                            pass
            self.reap()

    def receive(self) -> None:
        try:
            data, fds, _flags, _addr = socket.recv_fds(
                self.sock, _MESSAGE, 3, socket.MSG_CMSG_CLOEXEC
            )
        except OSError:
            data, fds = b"", []
        if not data:
            self.open = False  # the server is gone: finish what runs, then leave
            self.selector.unregister(self.sock)
            return
        try:
            self.start(json.loads(data), fds)
        finally:
            for fd in fds:
                os.close(fd)

    def start(self, request: dict[str, Any], fds: list[int]) -> None:
        try:
            pid = _start(request, fds, self.home)
        except OSError as exc:
            # Never started: said on its standard error, 127 or 126 as a shell would.
            code = 127 if exc.errno == errno.ENOENT else 126
            where = f" in {request['cwd']}" if request["cwd"] else ""
            with contextlib.suppress(OSError):
                os.write(fds[1], f"toolship: cannot run {request['argv'][0]!r}{where}: "
                         f"{exc.strerror}\n".encode())  # fmt: skip
            _write_exit_file(request["exit_file"], code)
            self.tell({"id": request["id"], "exited": code})
            return
        self.children[pid] = request["exit_file"]
        self.tell({"id": request["id"], "pid": pid})

    def reap(self) -> None:
        while self.children:
            # Looked at, not collected (WNOWAIT): the executor stays in the process table,
            # a zombie, until its code is on disk, so a server following it by pid never
            # sees it gone without one.
            try:
                ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if ended is None or ended.si_pid == 0:
                return
            pid = ended.si_pid
            code = ended.si_status
            if ended.si_code != os.CLD_EXITED:
                code += 128  # killed by a signal: the shell's convention
            exit_file = self.children.pop(pid, None)
            if exit_file is not None:
                _write_exit_file(exit_file, code)  # first: then the server may hear of it
            os.waitpid(pid, 0)
            if exit_file is not None:
                self.tell({"pid": pid, "code": code})

    def tell(self, message: dict[str, object]) -> None:
        if self.open:
            with contextlib.suppress(OSError):
                self.sock.send(json.dumps(message).encode())


def main(fd: int) -> None:
    os.set_inheritable(fd, False)  # no executor inherits the server's socket
    if os.geteuid() == 0:
        os.setgroups([])  # inherited by every executor (it needs none; podman as root neither)
        _clear_inheritable_capabilities()
    _Keeping(socket.socket(fileno=fd)).run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
