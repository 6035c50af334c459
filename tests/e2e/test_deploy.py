"""The deployable form: toolship's own image, started as its systemd unit starts it.

systemd does not run here (no init), so the test reads deploy/toolship@.service as systemd
would — `systemd-analyze verify` first, then its ExecStart with the instance name and the
environment file filled in — and runs that command: a replica in a container, on a
PostgreSQL database, with a token file, answering the SDK and running a task.
"""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import until
from tests.conftest import require
from tests.integration.servers import free_port
from toolship import Client

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "toolship@.service"
IMAGE = "localhost/toolship"


def _unit(instance: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(UNIT.read_text())
    return parser


def _command(line: str, instance: str, env: dict[str, str]) -> list[str]:
    """An Exec line as systemd runs it: %i, then ${VAR} from the environment file."""
    line = line.lstrip("-").replace("%i", instance)
    line = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], line)
    return shlex.split(line)


@pytest.fixture
def replica(tmp_path: Path, postgres: Any) -> Iterator[tuple[str, str]]:
    require(
        subprocess.run(["podman", "image", "exists", IMAGE], check=False).returncode == 0,
        f"the image {IMAGE}",
        "run scripts/build-images.sh toolship",
    )
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(_copy_as_instance(tmp_path, "r1"))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    token = "deploy-test-token"
    (home / "tokens").write_text(token + "\n")
    (home / "tokens").chmod(0o600)
    url = postgres.fresh()
    port = free_port()
    env = {
        "LISTEN_HOST": "127.0.0.1",
        "LISTEN_PORT": str(port),
        "TOOLSHIP_HOST_HOME": str(home),
        "TOOLSHIP_DATABASE__URL": url,
        "TOOLSHIP_SERVER__TOKEN_FILE": "/var/lib/toolship/tokens",
    }
    env_file = tmp_path / "r1.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    service = _unit("r1")["Service"]
    start, stop = (_command(service[key], "r1", env) for key in ("ExecStart", "ExecStop"))
    start = [str(env_file) if a == "/etc/toolship/r1.env" else a for a in start]
    with (tmp_path / "server.log").open("wb") as out:
        server = subprocess.Popen(start, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        subprocess.run(stop, capture_output=True, check=False, timeout=60)
        server.wait(60)
        subprocess.run(["podman", "rm", "--force", "--ignore", "toolship-r1"], check=False)
        postgres.drop(url)


def _copy_as_instance(folder: Path, instance: str) -> Path:
    """The template unit under an instance's name (verify wants a name it can expand)."""
    copy = folder / f"toolship@{instance}.service"
    copy.write_text(UNIT.read_text())
    return copy


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_the_unit_starts_the_image_as_a_replica_on_postgresql(replica: tuple[str, str]) -> None:
    url, token = replica
    until("the replica answers", lambda: _answers(url), timeout=60)
    assert httpx.get(f"{url}/ga4gh/tes/v1/tasks").status_code == 401  # the token file holds
    with Client(url, token=token) as client:
        task = client.run("busybox", ["sh", "-c", "echo hello from $(id -u)"])
        assert task.state == "COMPLETE"
        assert task.logs().strip() == "hello from 65534"  # as nobody, in the container
        assert client.http.get("/ga4gh/tes/v1/service-info").json()["type"]["artifact"] == "tes"
