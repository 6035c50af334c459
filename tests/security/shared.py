"""A real shared server (``toolship serve``, not the embedded one) for the policy and limit
tests: its own home, a token file, a TOML config, a free loopback port."""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.integration.servers import free_port

TOKEN = "shared-server-token"


@dataclass
class Shared:
    url: str
    home: Path

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=timeout
        )


def wait_healthy(
    url: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 60,
    verify: ssl.SSLContext | bool = True,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}): {log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            health = httpx.get(f"{url}/api/v1/health", timeout=2, verify=verify)
            if health.status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"the server did not answer within {timeout:.0f}s: {log.read_text()}")


@contextlib.contextmanager
def shared_server(
    root: Path, config: str = "", env: dict[str, str] | None = None
) -> Iterator[Shared]:
    """``toolship serve --config FILE``; ``config`` is TOML for sections other than [server]."""
    home = root / "shared-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "tokens").write_text(TOKEN + "\n")
    port = free_port()
    cfg = root / "toolship.toml"
    cfg.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\ntoken_file = "{home / "tokens"}"\n\n'
        + config
    )
    log = home / "server.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOOLSHIP_")}
    environment.update({"TOOLSHIP_HOME": str(home), **(env or {})})
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "toolship", "serve", "--config", str(cfg)],
            env=environment, stdout=out, stderr=out,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield Shared(url=url, home=home)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
