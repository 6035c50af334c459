"""Service builds take turns and get the server's build limits (in-process, fake images).

Real podman under those limits is tested in tests/integration/test_build_confinement.py.
"""

from __future__ import annotations

import io
import tarfile

import httpx

from tests.api.conftest import Server, until
from toolship.catalog.confine import BuildLimits

BUILDS = "/api/v1/builds"


def _context(containerfile: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        data = containerfile.encode()
        info = tarfile.TarInfo("Containerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _start(api: httpx.Client, containerfile: str, name: str) -> str:
    r = api.post(BUILDS, files={"context": ("c.tar.gz", _context(containerfile))},
                 data={"name": name})  # fmt: skip
    assert r.status_code == 202, r.text
    build_id: str = r.json()["id"]
    return build_id


def _log(api: httpx.Client, build_id: str) -> str:
    return api.get(f"{BUILDS}/{build_id}/log", params={"follow": "false"}).text


def _state(api: httpx.Client, build_id: str) -> str:
    state: str = api.get(f"{BUILDS}/{build_id}").json()["state"]
    return state


def test_builds_past_builds_at_once_wait_for_their_turn_and_say_so(server: Server) -> None:
    server.config = {"images": {"builds_at_once": 1}}
    with server.run() as api:
        held = _start(api, "FROM localhost/toolship-busybox\nRUN hold\n", "first")
        until("the first build runs", lambda: "STEP 1/2" in _log(api, held))
        queued = _start(api, 'FROM localhost/toolship-busybox\nCMD ["true"]\n', "second")
        until("the second build says it waits", lambda: "waiting" in _log(api, queued))
        log = _log(api, queued)
        assert "images.builds_at_once = 1 builds are running" in log, log
        assert "STEP" not in log  # it has not started
        assert _state(api, queued) == "RUNNING"
        server.images.release.set()
        until("both builds end", lambda: {_state(api, held), _state(api, queued)} == {"SUCCEEDED"})
        assert "STEP 1/2" in _log(api, queued)


def test_a_build_gets_the_servers_build_limits(server: Server) -> None:
    server.config = {
        "images": {"build_memory_gb": 1.5, "build_cpus": 0.5, "build_timeout_seconds": 90},
        "local": {"pids_limit": 128},
    }
    with server.run() as api:
        build = _start(api, 'FROM localhost/toolship-busybox\nCMD ["true"]\n', "limited")
        until("the build ends", lambda: _state(api, build) == "SUCCEEDED")
    [limits] = server.images.build_limits
    assert isinstance(limits, BuildLimits)
    assert (limits.memory_bytes, limits.cpus, limits.pids, limits.timeout) == (
        int(1.5 * 1024**3), 0.5, 128, 90.0,
    )  # fmt: skip
