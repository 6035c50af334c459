"""Shared fixtures.  Integration tests use real podman; a missing piece fails loudly in CI."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
BUSYBOX = "localhost/toolship-busybox"
PYTHON_IMAGE = "localhost/toolship-python"
SCIENCE_IMAGE = "localhost/toolship-science"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The servers tests start make no SBOM of each image a task ran (images.sboms_on_use): a
# scan of the python image is 12-20 s of CPU on two cores, behind every suite's back.
# (The in-process API tests clear TOOLSHIP_* variables: there it is on, as shipped.)
os.environ.setdefault("TOOLSHIP_IMAGES__SBOMS_ON_USE", "false")


def toolship(
    *args: str, check: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in a fresh process with the test's environment."""
    result = subprocess.run(
        [sys.executable, "-m", "toolship", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"toolship {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def read_when_written(path: Path, timeout: float = 60) -> str:
    """The contents of a file another process writes, once it exists and is not empty.

    Reading right after a request that makes the server write it would race the server.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            text = path.read_text()
            if text:
                return text
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {timeout:.0f}s")


def require(condition: bool, what: str, fix: str) -> None:
    """Fail (in CI, or always) rather than skip when a real component is missing."""
    if not condition:
        pytest.fail(f"{what} is missing: {fix}", pytrace=False)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """PostgreSQL from scripts/postgres.sh: ``postgres.fresh()`` is a new database's URL."""
    from tests.postgres import databases  # psycopg is loaded only where a test needs it

    dbs = databases()
    yield dbs
    dbs.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new database: an SQLite file, or a PostgreSQL database of the test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
        return
    postgres = request.getfixturevalue("postgres")
    url = postgres.fresh()
    yield url
    postgres.drop(url)


@pytest.fixture(scope="session")
def busybox() -> str:
    require(shutil.which("podman") is not None, "podman", "run scripts/setup-host.sh")
    ok = subprocess.run(["podman", "image", "exists", BUSYBOX], check=False).returncode == 0
    require(ok, f"image {BUSYBOX}", "run scripts/build-images.sh busybox")
    return BUSYBOX


@pytest.fixture(scope="session")
def python_image(busybox: str) -> str:
    ok = subprocess.run(["podman", "image", "exists", PYTHON_IMAGE], check=False).returncode == 0
    require(ok, f"image {PYTHON_IMAGE}", "run scripts/build-images.sh python")
    return PYTHON_IMAGE


@pytest.fixture(scope="session")
def science(busybox: str) -> str:
    """The examples' image: PyTorch, scikit-learn, segyio, OpenMPI and mpi4py."""
    ok = subprocess.run(["podman", "image", "exists", SCIENCE_IMAGE], check=False).returncode == 0
    require(ok, f"image {SCIENCE_IMAGE}", "run scripts/build-images.sh science")
    return SCIENCE_IMAGE


SLURM_DIR = Path(os.environ.get("TOOLSHIP_SLURM_DIR") or "/tmp/toolship-slurm")


@pytest.fixture(scope="session")
def slurm_cluster() -> Path:
    """The local two-node Slurm cluster (scripts/slurm-cluster.sh); its slurm.conf."""
    fix = "run scripts/slurm-cluster.sh start (scripts/test.sh does)"
    require(shutil.which("sbatch") is not None, "Slurm's sbatch", fix)
    env = {**os.environ, "TOOLSHIP_SLURM_DIR": str(SLURM_DIR)}
    status = subprocess.run(
        [str(ROOT / "scripts" / "slurm-cluster.sh"), "status"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    require(status.returncode == 0, "the local Slurm cluster", f"{fix}; {status.stdout}")
    return SLURM_DIR / "slurm.conf"


REGISTRY = os.environ.get("TOOLSHIP_REGISTRY_ADDR") or "127.0.0.1:5055"


@pytest.fixture(scope="session")
def registry(busybox: str) -> str:
    """The loopback OCI registry (scripts/registry.sh; started if it is not running): HOST:PORT.

    It stays up after the tests, like the Slurm cluster; tests push to repositories of
    their own (``unique_name``), so runs do not see each other's images.
    """
    fix = "run scripts/setup-host.sh (installs docker-registry and skopeo)"
    found = shutil.which("docker-registry") and shutil.which("skopeo") and shutil.which("gpg")
    require(bool(found), "docker-registry, skopeo and gpg", fix)
    started = subprocess.run(
        [str(ROOT / "scripts" / "registry.sh"), "start"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    require(started.returncode == 0, "the loopback registry", f"{fix}; {started.stderr}")
    return REGISTRY


def unique_name(prefix: str) -> str:
    """A repository name no other test run uses (lower case, as image names must be)."""
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns() % 10**9}"


@dataclass(frozen=True)
class GpgKey:
    """A GPG key pair made for a test: its keyring folder, fingerprint and public key file."""

    home: Path
    fingerprint: str
    public: Path

    def sign(self, source: str, target: str) -> None:
        """Copy ``source`` to ``target`` (docker:// references) signed with this key."""
        subprocess.run(
            ["skopeo", "copy", "--quiet", "--sign-by", self.fingerprint,
             f"docker://{source}", f"docker://{target}"],
            env={**os.environ, "GNUPGHOME": str(self.home)},
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip


def make_gpg_key(folder: Path, who: str) -> GpgKey:
    """A new passphrase-less GPG key in a keyring of its own under ``folder``."""
    home = folder / f"gnupg-{who}"
    home.mkdir(mode=0o700, parents=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--passphrase", ""]
    uid = f"{who} <{who}@toolship.test>"
    run = {"env": env, "capture_output": True, "check": True, "timeout": 120}
    subprocess.run([*gpg, "--quick-gen-key", uid, "default", "default", "never"], **run)
    listed = subprocess.run([*gpg, "--with-colons", "--list-secret-keys"], text=True, **run)
    fingerprint = next(
        ln.split(":")[9] for ln in listed.stdout.splitlines() if ln.startswith("fpr:")
    )
    public = folder / f"{who}.asc"
    exported = subprocess.run([*gpg, "--armor", "--export", fingerprint], **run).stdout
    public.write_bytes(exported)
    return GpgKey(home, fingerprint, public)


@pytest.fixture(params=["local", "slurm"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test against each backend: list it before ``server`` (it sets its environment)."""
    name: str = request.param
    if name == "slurm":
        conf = request.getfixturevalue("slurm_cluster")
        monkeypatch.setenv("SLURM_CONF", str(conf))
        monkeypatch.setenv("TOOLSHIP_BACKEND", "slurm")
        monkeypatch.setenv("TOOLSHIP_SLURM__POLL_SECONDS", "1")
    return name


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("TOOLSHIP_HOME", str(h))
    monkeypatch.delenv("TOOLSHIP_SERVER", raising=False)
    monkeypatch.delenv("TOOLSHIP_TOKEN", raising=False)
    return h


def leftover_containers(task_id: str) -> list[str]:
    out = subprocess.run(
        [
            "podman",
            "ps",
            "-a",
            "--filter",
            f"label=io.toolship.task={task_id}",
            "--format",
            "{{.Names}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line]


@pytest.fixture
def server(home: Path, busybox: str) -> Iterator[Any]:
    from toolship.embedded import ensure_server, stop_server

    found = ensure_server(home)
    yield found
    stop_server(home)


@pytest.fixture
def api(server: Any) -> Iterator[httpx.Client]:
    """Raw HTTP access to the test server, with its token."""
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=120
    ) as c:
        yield c


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: nothing may be skipped for a missing component."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped:
        print(f"\nCI: {skipped} test(s) were skipped; in CI every component must be present")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
