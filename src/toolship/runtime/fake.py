"""A runtime for tests: the executor's command runs on the host, its container paths
mapped to the host paths mounted there.

With it the real worker (staging, launching under the exit-file wrapper, captures,
output collection, resuming) runs with no container engine: ``cat /in/x`` reads the
staged input, ``cp /in/x /out/y`` writes the output the worker then delivers.  It
isolates nothing and runs commands as the server's own user: it is for tests only,
and no setting can select it (a test hands it to a backend).

An image named ``missing/…`` fails as podman does when an image is not there, so
the worker's "image not available" path can be tested too.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from toolship.runtime.base import ExecSpec, RunImage, missing_image_message

__all__ = ["FakeRuntime"]

_NOT_FOUND = "Error: missing/image: image not known"


class FakeRuntime:
    name = "fake"
    # Staged as for a container (inputs mounted, writable directories under the root).
    isolated = True

    def command(self, spec: ExecSpec) -> list[str]:
        if spec.image.startswith("missing/"):
            return ["sh", "-c", f'echo "{_NOT_FOUND}" >&2; exit 125']
        return [_host_path(spec, word) for word in spec.command]

    def run_as(self, spec: ExecSpec) -> tuple[int, int] | None:
        return None  # the server's own user

    def environment(self, spec: ExecSpec) -> dict[str, str] | None:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **spec.env}

    def cwd(self, spec: ExecSpec) -> Path | None:
        return Path(_host_path(spec, spec.workdir)) if spec.workdir else spec.root

    def stop_commands(self, name: str, grace_seconds: int) -> list[list[str]]:
        return []  # a host process: stopped by signalling its process group

    def pod_commands(self, spec: ExecSpec) -> list[list[str]]:
        return []

    def remove_pod_commands(self, pod: str) -> list[list[str]]:
        return []

    async def image(self, spec: ExecSpec) -> RunImage | None:
        """A made-up digest and id per image name (no storage to ask), as podman answers."""
        if spec.image.startswith("missing/"):
            return None
        name = spec.image.encode()
        return RunImage(
            entrypoint=[],
            digest="sha256:" + hashlib.sha256(b"manifest " + name).hexdigest(),
            image_id="sha256:" + hashlib.sha256(b"config " + name).hexdigest(),
        )

    def start_failure(self, exit_code: int, stderr_tail: str, image: str) -> str | None:
        if exit_code == 125 and _NOT_FOUND in stderr_tail:
            return missing_image_message(image, stderr_tail)
        return None


def _host_path(spec: ExecSpec, word: str) -> str:
    """``word`` with a leading container path replaced by where it is on the host.

    The innermost mount wins (an input mounted inside a writable directory); any other
    word is left as it is (``sh`` and ``/bin/cat`` are the host's).
    """
    for mount in sorted(spec.mounts, key=lambda m: len(m.container), reverse=True):
        container = mount.container.rstrip("/")
        if word == container or word.startswith(container + "/"):
            return str(mount.host) + word[len(container) :]
    return word
