"""Find — or start in the background — the local embedded server for the CLI and SDK.

The server listens on 127.0.0.1 on a free port, with a random token kept in a
file only the user can read; ``server.json`` in the home directory says
where it is.  A lock file makes concurrent CLI calls start one server, not two.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from toolship.config import ServerState, default_home, state_file
from toolship.errors import ServerUnavailable

__all__ = ["EmbeddedServer", "ensure_server", "find_server", "stop_server"]

START_TIMEOUT = 60.0
# Started through a shell that exits at once, so the server is not our child:
# it outlives us without becoming a zombie or a "still running" warning.
_DETACH = '"$@" </dev/null >>"$TOOLSHIP_SERVER_LOG" 2>&1 & echo $!'


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    url: str
    token: str
    pid: int
    home: Path


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def find_server(home: Path | None = None) -> EmbeddedServer | None:
    """The running embedded server of ``home``, or None."""
    home = home or default_home()
    try:
        info: ServerState = json.loads(state_file(home).read_text())
        token = Path(info["token_file"]).read_text().split()[0]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    if not _healthy(info["url"]):
        return None
    return EmbeddedServer(url=info["url"], token=token, pid=int(info["pid"]), home=home)


def _log_tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def ensure_server(home: Path | None = None) -> EmbeddedServer:
    home = home or default_home()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = find_server(home)
    if found is not None:
        return found
    # Owner-only like every file of the home (an empty file, but a tidy home says so).
    with os.fdopen(os.open(home / "server.lock", os.O_WRONLY | os.O_CREAT, 0o600), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = find_server(home)  # another CLI may have started it while we waited
        if found is not None:
            return found
        return _start(home)


def _start(home: Path) -> EmbeddedServer:
    log_path = home / "server.log"
    state_file(home).unlink(missing_ok=True)
    env = {**os.environ, "TOOLSHIP_HOME": str(home), "TOOLSHIP_SERVER_LOG": str(log_path)}
    env.pop("TOOLSHIP_SERVER__PORT", None)
    launched = subprocess.run(
        ["sh", "-c", _DETACH, "sh", sys.executable, "-m", "toolship", "serve", "--embedded"],
        capture_output=True,
        text=True,
        env=env,
        start_new_session=True,
        check=True,
    )
    pid = int(launched.stdout.strip())
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = find_server(home)
        if found is not None:
            return found
        if not _running(pid):
            raise ServerUnavailable(
                f"the local toolship server failed to start; "
                f"its log {log_path} ends with:\n{_log_tail(log_path)}"
            )
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)
    raise ServerUnavailable(
        f"the local toolship server did not answer within {START_TIMEOUT:.0f}s; see {log_path}"
    )


def stop_server(home: Path | None = None, timeout: float = 15.0) -> EmbeddedServer | None:
    """Stop the embedded server (running tasks keep running and resume next start)."""
    found = find_server(home)
    if found is None:
        return None
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(
            f"{found.url}/api/v1/server/shutdown",
            headers={"Authorization": f"Bearer {found.token}"},
            timeout=5.0,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _running(found.pid):
        time.sleep(0.05)
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
