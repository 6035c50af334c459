"""Features only an operator may turn on: on a shared server (`toolship serve`) a client
asking for them gets a 400 that names the setting; the operator can allow each one.

Moved here from tests/security/test_policy.py (issue 12, item 8): admission needs no
container.  What must run for real (the process runtime on the host, Slurm's multi-node
tasks, `toolship serve` refusing to start) stays there.
"""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import BATCHES, TASKS, Server
from tests.requests import refused, task


def test_a_shared_server_refuses_the_process_runtime_by_default(
    server: Server, api: httpx.Client
) -> None:
    canary = server.home / "ran-on-the-host"
    doc = task("unused", runtime="process")
    doc["executors"][0]["command"] = ["touch", str(canary)]
    detail = refused(api, doc, "policy.runtimes")
    assert "runtime=process" in detail and "allowed here: docker, podman" in detail, detail
    # The same request as a batch member goes through the same admission.
    sweep = {"template": doc, "params": [{"i": 1}, {"i": 2}]}
    r = api.post(BATCHES, json=sweep)
    assert r.status_code == 400 and "policy.runtimes" in r.json()["detail"], r.text
    assert not canary.exists()
    assert server.fake.attempts == []


def test_the_operator_can_allow_the_process_runtime(server: Server) -> None:
    server.config = {"policy": {"runtimes": ["podman", "process"]}}
    with server.run() as api:
        r = api.post(TASKS, json=task("unused", runtime="process"))
        assert r.status_code == 200, r.text


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
def test_image_transports_are_refused_naming_the_setting(api: httpx.Client, image: str) -> None:
    detail = refused(api, task(image), "policy.image_transports")
    assert "[registry/]name[:tag][@digest]" in detail, detail


@pytest.mark.parametrize(
    "image", ["busybox;id", "BusyBox", "../busybox", "busy box", "a\x00b", "x" * 600]
)
def test_odd_image_references_are_refused(api: httpx.Client, image: str) -> None:
    r = api.post(TASKS, json=task(image))
    assert r.status_code == 400, r.text
    assert "image" in r.json()["detail"], r.text


def test_plain_references_with_registry_tag_and_digest_are_accepted(api: httpx.Client) -> None:
    digest = "sha256:" + "a" * 64
    for image in ("localhost/toolship-busybox", "127.0.0.1:5055/team/tool:1.2",
                  f"busybox@{digest}"):  # fmt: skip
        r = api.post(TASKS, json=task(image))
        assert r.status_code == 200, (image, r.text)


def test_an_allowed_transport_passes(server: Server) -> None:
    server.config = {"policy": {"image_transports": ["oci-archive"]}}
    with server.run() as api:
        r = api.post(TASKS, json=task("oci-archive:/nonexistent/image.tar"))
        assert r.status_code == 200, r.text
        refused(api, task("dir:/etc"), "policy.image_transports")


def test_named_s3_profiles_are_refused_on_a_shared_server(api: httpx.Client) -> None:
    doc = task(s3_profile="default")
    detail = refused(api, doc, "policy.s3_profiles")
    assert "allowed here: none" in detail, detail
    # A map lists its objects with the template's credentials: refused before listing.
    doc["outputs"] = [{"url": "s3://bucket/out/", "path": "/work/out", "type": "DIRECTORY"}]
    batch = {"template": doc, "map": {"over": "s3://bucket/raw/*.txt", "to": "s3://bucket/o"}}
    r = api.post(BATCHES, json=batch)
    assert r.status_code == 400 and "policy.s3_profiles" in r.json()["detail"], r.text


def test_multi_node_tasks_can_be_refused_altogether(server: Server) -> None:
    server.config = {"policy": {"multi_node": False}}
    with server.run() as api:
        refused(api, task(nodes="2"), "policy.multi_node")


def test_the_embedded_server_allows_process_but_not_transports(server: Server) -> None:
    # The embedded server serves its own user: the process runtime is theirs to use.
    server.embedded = True
    with server.run() as api:
        r = api.post(TASKS, json=task("unused", runtime="process"))
        assert r.status_code == 200, r.text
        refused(api, task("oci-archive:/tmp/image.tar"), "policy.image_transports")
