"""Features only an operator may turn on: on a shared server (`toolship serve`) a client
asking for them gets a 400 that names the setting; the operator can allow each one.

Issue 12, item 8 (a client ran host commands as root) and acceptance point 4.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.servers import free_port
from tests.security.shared import Shared, shared_server, wait_healthy

TASKS = "/ga4gh/tes/v1/tasks"


def task(image: str = "localhost/toolship-busybox", **params: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"executors": [{"image": image, "command": ["true"]}]}
    if params:
        doc["resources"] = {"backend_parameters": params}
    return doc


def refused(http: httpx.Client, doc: dict[str, Any], setting: str) -> str:
    r = http.post(TASKS, json=doc)
    assert r.status_code == 400, r.text
    detail: str = r.json()["detail"]
    assert setting in detail, detail
    assert "operator may allow" in detail or "policy" not in setting, detail
    return detail


def wait_final(http: httpx.Client, task_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state: str = http.get(f"{TASKS}/{task_id}").json()["state"]
        if state in ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish within {timeout:.0f}s")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    with shared_server(tmp_path_factory.mktemp("shared")) as srv:
        yield srv


def test_a_shared_server_refuses_the_process_runtime_by_default(shared: Shared) -> None:
    canary = shared.home / "ran-on-the-host"
    with shared.client() as http:
        doc = task("unused", runtime="process")
        doc["executors"][0]["command"] = ["touch", str(canary)]
        detail = refused(http, doc, "policy.runtimes")
        assert "runtime=process" in detail and "allowed here: docker, podman" in detail, detail
        # The same request as a batch member goes through the same admission.
        sweep = {"template": doc, "params": [{"i": 1}, {"i": 2}]}
        r = http.post("/api/v1/batches", json=sweep)
        assert r.status_code == 400 and "policy.runtimes" in r.json()["detail"], r.text
    assert not canary.exists()


def test_the_operator_can_allow_the_process_runtime(tmp_path: Path) -> None:
    config = '[policy]\nruntimes = ["podman", "process"]\n'
    with shared_server(tmp_path, config) as srv, srv.client() as http:
        doc = task("unused", runtime="process")
        doc["executors"][0]["command"] = ["sh", "-c", "echo on the host"]
        r = http.post(TASKS, json=doc)
        assert r.status_code == 200, r.text
        assert wait_final(http, r.json()["id"]) == "COMPLETE", http.get(
            f"{TASKS}/{r.json()['id']}", params={"view": "FULL"}
        ).text


@pytest.mark.parametrize(
    "image",
    [
        "oci-archive:/tmp/image.tar",
        "docker-archive:/tmp/image.tar",
        "oci:/var/lib/layout",
        "dir:/etc",
        "containers-storage:localhost/toolship-busybox",
        "docker-daemon:busybox:latest",
        "docker://docker.io/library/busybox",
    ],
)
def test_image_transports_are_refused_naming_the_setting(shared: Shared, image: str) -> None:
    with shared.client() as http:
        detail = refused(http, task(image), "policy.image_transports")
        assert "[registry/]name[:tag][@digest]" in detail, detail


@pytest.mark.parametrize(
    "image", ["busybox;id", "BusyBox", "../busybox", "busy box", "a\x00b", "x" * 600]
)
def test_odd_image_references_are_refused(shared: Shared, image: str) -> None:
    with shared.client() as http:
        r = http.post(TASKS, json=task(image))
        assert r.status_code == 400, r.text
        assert "image" in r.json()["detail"], r.text


def test_plain_references_with_registry_tag_and_digest_are_accepted(shared: Shared) -> None:
    digest = "sha256:" + "a" * 64
    with shared.client() as http:
        for image in (
            "localhost/toolship-busybox",
            "127.0.0.1:5055/team/tool:1.2",
            f"busybox@{digest}",
        ):
            r = http.post(TASKS, json=task(image))
            assert r.status_code == 200, (image, r.text)
            http.post(f"{TASKS}/{r.json()['id']}:cancel")


def test_an_allowed_transport_passes(tmp_path: Path) -> None:
    config = '[policy]\nimage_transports = ["oci-archive"]\n'
    with shared_server(tmp_path, config) as srv, srv.client() as http:
        r = http.post(TASKS, json=task("oci-archive:/nonexistent/image.tar"))
        assert r.status_code == 200, r.text
        http.post(f"{TASKS}/{r.json()['id']}:cancel")
        refused(http, task("dir:/etc"), "policy.image_transports")


def test_named_s3_profiles_are_refused_on_a_shared_server(shared: Shared) -> None:
    with shared.client() as http:
        doc = task(s3_profile="default")
        detail = refused(http, doc, "policy.s3_profiles")
        assert "allowed here: none" in detail, detail
        # A map lists its objects with the template's credentials: refused before listing.
        doc["outputs"] = [{"url": "s3://bucket/out/", "path": "/work/out", "type": "DIRECTORY"}]
        batch = {"template": doc, "map": {"over": "s3://bucket/raw/*.txt", "to": "s3://bucket/o"}}
        r = http.post("/api/v1/batches", json=batch)
        assert r.status_code == 400 and "policy.s3_profiles" in r.json()["detail"], r.text


def test_multi_node_tasks_can_be_refused_altogether(tmp_path: Path) -> None:
    with shared_server(tmp_path, "[policy]\nmulti_node = false\n") as srv, srv.client() as http:
        refused(http, task(nodes="2"), "policy.multi_node")


def test_multi_node_on_slurm_needs_the_host_network_setting(
    tmp_path: Path, slurm_cluster: Path
) -> None:
    env = {"SLURM_CONF": str(slurm_cluster), "TOOLSHIP_BACKEND": "slurm"}
    with shared_server(tmp_path / "a", env=env) as srv, srv.client() as http:
        detail = refused(http, task(nodes="2"), "policy.host_network")
        assert "nodes=2" in detail, detail
    config = "[policy]\nhost_network = true\n"
    with shared_server(tmp_path / "b", config, env=env) as srv, srv.client() as http:
        r = http.post(TASKS, json=task(nodes="2"))
        assert r.status_code == 200, r.text
        http.post(f"{TASKS}/{r.json()['id']}:cancel")
        assert wait_final(http, r.json()["id"]) == "CANCELED"


def test_the_embedded_server_allows_process_but_not_transports(api: httpx.Client) -> None:
    # The embedded server serves its own user: the process runtime is theirs to use.
    r = api.post(TASKS, json=task("unused", runtime="process"))
    assert r.status_code == 200, r.text
    refused(api, task("oci-archive:/tmp/image.tar"), "policy.image_transports")


def _serve(home: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOOLSHIP_")}
    environment.update(TOOLSHIP_HOME=str(home), **env)
    with (home / "server.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "toolship", "serve", "--host", "0.0.0.0", "--port", str(port)],
            env=environment, stdout=log, stderr=log,
        )  # fmt: skip


def test_serving_a_public_address_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    proc = _serve(home, free_port())
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError(
            "toolship serve --host 0.0.0.0 started without tokens: "
            + (home / "server.log").read_text()
        ) from None
    text = (home / "server.log").read_text()
    assert code != 0
    assert "server.token_file" in text and "server.allow_unauthenticated" in text, text


def test_the_operator_can_opt_out_of_authentication_explicitly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    proc = _serve(home, port, TOOLSHIP_SERVER__ALLOW_UNAUTHENTICATED="true")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, home / "server.log")
    finally:
        proc.terminate()
        proc.wait(30)
