"""Several ``toolship serve`` replicas on one PostgreSQL database, behind a real nginx.

Each replica is a real process (its own port and name, one shared home, so one work
folder and one sealing key); nginx, configured by ``scripts/nginx.sh``, spreads the
clients' requests over them.  A test kills a replica with SIGKILL and starts it again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import require
from tests.integration.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
TOOLSHIP = str(Path(sys.executable).with_name("toolship"))


def until_healthy(
    url: str, proc: subprocess.Popen[bytes] | None, log: Path, timeout: float
) -> None:
    """Poll ``url``'s health until it answers; a process that exits fails with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{url} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@dataclass
class Replica:
    name: str
    env: dict[str, str]
    logs: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    # A host name of its own (a UTS namespace: root only), so the replicas are on
    # different hosts as far as they can tell; None: this host's.
    host: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.logs / f"{self.name}-{self.starts}.log"

    def launch(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        command = [TOOLSHIP, "serve", "--port", str(self.port)]
        if self.host is not None:  # (exec: the pid is the server's, for kill -9)
            named = 'hostname "$1" && shift && exec "$@"'
            command = ["unshare", "--uts", "sh", "-c", named, "sh", self.host, *command]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command,
                env={**self.env, "TOOLSHIP_SERVER__REPLICA": self.name},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self.proc

    def start(self) -> None:
        until_healthy(self.url, self.launch(), self.log, 60)

    def kill(self) -> None:
        """kill -9: the process ends at once, its containers run on."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)


def start_all(replicas: list[Replica]) -> None:
    """Start the first replica alone (it makes the shared home and its sealing key, and
    migrates the database), then the others side by side."""
    replicas[0].start()
    for r in replicas[1:]:
        r.launch()
    for r in replicas[1:]:
        until_healthy(r.url, r.proc, r.log, 60)


@dataclass
class Nginx:
    """nginx in the foreground, spreading requests over the replicas (scripts/nginx.sh)."""

    folder: Path
    upstreams: list[str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        script = str(ROOT / "scripts" / "nginx.sh")
        found = subprocess.run([script, "install"], capture_output=True, text=True, check=False)
        require(found.returncode == 0, "nginx", f"run scripts/nginx.sh install ({found.stderr})")
        (self.folder / "tmp").mkdir(parents=True, exist_ok=True)
        config = subprocess.run(
            [script, "config", str(self.port), *self.upstreams],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        (self.folder / "nginx.conf").write_text(config)
        log = self.folder / "nginx.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [found.stdout.strip(), "-c", str(self.folder / "nginx.conf"),
                 "-p", str(self.folder), "-g", "daemon off;"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        until_healthy(self.url, self.proc, log, 30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


def runs_folder() -> Path:
    """A folder every container may write (tasks run as ``local.task_user``)."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"toolship-replica-runs-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    return folder
