"""SBOM routes in process: made once per digest (a fake scanner), by image, service, task."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from tests.api.conftest import TOKEN, Server, create, until, wait
from toolship import Client
from toolship.cli.context import Ctx
from toolship.cli.sboms import sbom
from toolship.compute.local import LocalBackend
from toolship.db import Store
from toolship.db.schema import tasks
from toolship.errors import ToolshipError
from toolship.models import TaskLog
from toolship.runtime import Runtime
from toolship.runtime.fake import FakeRuntime
from toolship.supply.images import ImageUse, image_metadata, image_uses

SBOMS = "/api/v1/sboms"
LABELS = {"toolship.service.name": "tool", "org.opencontainers.image.version": "1.0"}


def _info(api: httpx.Client, digest: str) -> dict[str, object] | None:
    r = api.get(f"{SBOMS}/{digest}/info")
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    found: dict[str, object] = r.json()
    return found


def test_an_images_sbom_is_made_once_and_served_in_three_formats(server: Server) -> None:
    facts = server.images.add("localhost/tool:1", LABELS)
    with server.run() as api:
        first = api.post(SBOMS, json={"image": "localhost/tool:1"})
        assert first.status_code == 201, first.text
        info = first.json()
        assert info["digest"] == facts.digest and info["image_id"] == facts.image_id
        assert info["image"] == f"localhost/tool@{facts.digest}"
        assert info["formats"] == ["cyclonedx", "cyclonedx-1.4", "spdx"]
        assert info["components"] == 2 and info["tool"] == "fake 1.0" and info["error"] is None
        again = api.post(SBOMS, json={"image": f"localhost/tool@{facts.digest}"})
        assert again.status_code == 200 and again.json() == info
        assert server.scanner.scanned == [facts.image_id]
        r = api.get(f"{SBOMS}/{facts.digest}")
        assert r.headers["content-type"] == "application/vnd.cyclonedx+json; version=1.6"
        assert r.json()["specVersion"] == "1.6"
        r = api.get(f"{SBOMS}/{facts.digest}", params={"format": "cyclonedx-1.4"})
        assert r.json()["specVersion"] == "1.4"
        r = api.get(f"{SBOMS}/{facts.digest}", params={"format": "spdx"})
        assert r.headers["content-type"] == "application/spdx+json"
        assert r.json()["spdxVersion"] == "SPDX-2.3"
        r = api.get(f"{SBOMS}/{facts.digest}", params={"format": "xml"})
        assert r.status_code == 400 and "cyclonedx, cyclonedx-1.4, spdx" in r.json()["detail"]


def test_an_sbom_that_cannot_be_made_says_why_and_a_request_tries_again(server: Server) -> None:
    facts = server.images.add("localhost/tool:1", LABELS)
    server.scanner.refused["localhost/tool"] = "image localhost/tool is not in storage: load it"
    with server.run() as api:
        r = api.post(SBOMS, json={"image": "localhost/tool:1"})
        assert r.status_code == 201 and r.json()["error"].endswith("load it"), r.text
        assert r.json()["formats"] == []
        r = api.get(f"{SBOMS}/{facts.digest}")
        assert r.status_code == 404 and "load it" in r.json()["detail"]
        server.scanner.refused.clear()
        r = api.post(SBOMS, json={"image": "localhost/tool:1"})
        assert r.status_code == 201 and r.json()["error"] is None
        r = api.post(SBOMS, json={"image": "localhost/absent:1"})
        assert r.status_code == 400 and "not in this host's storage" in r.json()["detail"]
        r = api.get(f"{SBOMS}/sha256:{'0' * 64}")
        assert r.status_code == 404 and "toolship sbom IMAGE" in r.json()["detail"]


def test_registering_a_service_version_makes_its_sbom_in_the_background(server: Server) -> None:
    facts = server.images.add("localhost/tool:1", LABELS)
    with server.run() as api:
        r = api.post("/api/v1/services", json={"image": "localhost/tool:1"})
        assert r.status_code == 201, r.text
        info = until("the SBOM of the registered version", lambda: _info(api, facts.digest))
        assert info["image"] == f"localhost/tool@{facts.digest}"


def test_no_automatic_sbom_when_turned_off(server: Server) -> None:
    server.config = {"images": {"sboms_on_use": False}}
    facts = server.images.add("localhost/tool:1", LABELS)
    with server.run() as api:
        assert api.post("/api/v1/services", json={"image": "localhost/tool:1"}).status_code == 201
        assert _info(api, facts.digest) is None and server.scanner.scanned == []
        assert api.post(SBOMS, json={"image": "localhost/tool:1"}).status_code == 201


def test_a_tasks_sbom_is_the_digest_its_executor_ran(server: Server) -> None:
    facts = server.images.add("localhost/tool:1", LABELS)
    with server.run() as api:
        task_id = create(api, "true")
        assert wait(api, task_id) == "COMPLETE"
        r = api.get(f"/api/v1/tasks/{task_id}/sbom")
        assert r.status_code == 404 and "recorded no image" in r.json()["detail"]
        # What the real worker records (the fake backend runs no image).
        store = Store.open(server.settings().database_url)
        use = ImageUse(0, "localhost/tool:1", facts.digest, facts.image_id)
        row = store.get(task_id)
        logs = [TaskLog(logs=[], metadata=image_metadata(use))]
        with store.engine.begin() as conn:
            conn.execute(
                update(tasks)
                .where(tasks.c.id == row.id)
                .values(logs=json.dumps([log.model_dump(mode="json") for log in logs]))
            )
        store.close()
        r = api.get(f"/api/v1/tasks/{task_id}/sbom", params={"format": "spdx"})
        assert r.status_code == 200 and r.json()["name"] == "localhost/tool", r.text
        assert _info(api, facts.digest) is not None
        r = api.get(f"/api/v1/tasks/{task_id}/sbom", params={"executor": 3})
        assert r.status_code == 404 and "no executor 3" in r.json()["detail"]


def test_the_cli_gives_an_images_a_services_and_a_digests_sbom(
    server: Server, tmp_path: Path
) -> None:
    facts = server.images.add("localhost/tool:1", LABELS)
    with server.run() as api:
        client = Client("http://toolship.test", TOKEN, transport=api._transport)
        ctx = Ctx(server=None, token=None, _client=client)

        def cli(*args: str) -> Result:
            return CliRunner().invoke(sbom, list(args), obj=ctx, catch_exceptions=False)

        out = tmp_path / "tool.spdx.json"
        done = cli("localhost/tool:1", "--format", "spdx", "-o", str(out))
        assert done.exit_code == 0, done.output
        assert json.loads(out.read_text())["spdxVersion"] == "SPDX-2.3"
        assert api.post("/api/v1/services", json={"image": "localhost/tool:1"}).status_code == 201
        done = cli("tool@1.0")
        assert json.loads(done.stdout)["specVersion"] == "1.6"
        done = cli(facts.digest, "--format", "cyclonedx-1.4")
        assert json.loads(done.stdout)["specVersion"] == "1.4"
        assert server.scanner.scanned == [facts.image_id]  # made once, by the first
        assert client.sbom_info(facts.digest).components == 2
        server.scanner.refused["localhost/other"] = "image localhost/other: load it"
        server.images.add("localhost/other:1", LABELS)
        with pytest.raises(ToolshipError, match=r"no SBOM of localhost/other:1: .*load it"):
            client.image_sbom("localhost/other:1")


class _FakeRuntimeBackend(LocalBackend):
    def runtime(self, name: str) -> Runtime:
        return FakeRuntime()  # digests and ids as podman would record them, made up


def test_an_attempts_new_digests_get_their_sbom_after_the_task_ends(server: Server) -> None:
    server.config = {"local": {"runtime": "process", "accounting": False, "cpus": 2,
                               "memory_gb": 8}}  # fmt: skip
    executors = [{"image": "tool:1", "command": ["true"]},
                 {"image": "other@sha256:" + "ab" * 32, "command": ["true"]}]  # fmt: skip
    with server.run(lambda settings, storage: _FakeRuntimeBackend(settings, storage)) as api:
        tid = api.post("/ga4gh/tes/v1/tasks", json={"executors": executors}).json()["id"]
        assert wait(api, tid) == "COMPLETE"
        uses = image_uses(api.get(f"/ga4gh/tes/v1/tasks/{tid}?view=FULL").json()["logs"][0]
                          ["metadata"])  # fmt: skip
        for use in uses:
            info = until(f"the SBOM of {use.image}", lambda u=use: _info(api, u.digest))
            assert info["image"] == use.pinned
        # Scanned by image id: podman finds it whatever its name and tags.
        assert sorted(server.scanner.scanned) == sorted(u.image_id for u in uses)
        second = api.post("/ga4gh/tes/v1/tasks", json={"executors": executors}).json()["id"]
        assert wait(api, second) == "COMPLETE"
        assert len(server.scanner.scanned) == 2  # made once per digest
