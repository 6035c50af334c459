"""Roles and visibility on the catalog's routes, builds, SBOMs, audit, advisories, TRS and
the result cache, in process (fake images, fake SBOM scanner)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from tests.api.conftest import TASKS, Server, task, until, wait
from tests.api.principals import by, missing_like, with_users
from tests.api.test_cache import IMAGE, cached_from, doc, keys, runtime_digest, tag
from tests.api.test_real_worker import local
from tests.api.test_services import TYPED
from toolship.db.schema import components, sboms
from toolship.db.store import Store, make_engine
from toolship.supply.images import ImageUse
from toolship.supply.purls import component_of

SERVICES, BUILDS = "/api/v1/services", "/api/v1/builds"
NUMPY = "pkg:pypi/numpy@1.24.2"


@pytest.fixture(autouse=True)
def _users(monkeypatch: pytest.MonkeyPatch) -> None:
    with_users(monkeypatch)


def _context() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        data = b'FROM localhost/toolship-busybox\nLABEL toolship.service.name=built\nCMD ["true"]\n'
        info = tarfile.TarInfo("Containerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _forbidden(r: httpx.Response, who: str, role: str, action: str, needed: str) -> None:
    assert r.status_code == 403, r.text
    assert r.json()["detail"] == (
        f"{who} has the role {role}, and {action} needs the role {needed} or higher: "
        f"ask an admin of this server to give it to {who}"
    )


def test_maintainers_register_build_and_deprecate_users_run_viewers_read(server: Server) -> None:
    server.images.add("localhost/wordfreq:1", TYPED, cmd=["true"])
    with server.run() as api:
        r = api.post(SERVICES, json={"image": "localhost/wordfreq:1"}, headers=by("alice"))
        _forbidden(r, "alice", "user", "registering services", "maintainer")
        r = api.post(SERVICES, json={"image": "localhost/wordfreq:1"}, headers=by("mona"))
        assert r.status_code == 201, r.text
        for who in ("carol", "alice"):  # everyone reads the catalog, TES's and TRS's way
            assert api.get(SERVICES, headers=by(who)).json()["services"][0]["name"] == "wordfreq"
            assert api.get(f"{SERVICES}/wordfreq", headers=by(who)).status_code == 200
            assert api.get("/ga4gh/trs/v2/tools", headers=by(who)).status_code == 200
            assert api.get("/ga4gh/tes/v1/service-info", headers=by(who)).status_code == 200
        run = {"inputs": {"text": "s3://b/t.txt"}, "outputs": {"counts": "s3://b/c.csv"}}
        r = api.post(f"{SERVICES}/wordfreq/runs", json=run, headers=by("carol"))
        _forbidden(r, "carol", "viewer", "running services", "user")
        r = api.post(f"{SERVICES}/wordfreq/runs", json=run, headers=by("alice"))
        assert r.status_code == 200, r.text
        alices = r.json()["id"]
        assert api.get(f"{TASKS}/{alices}", headers=by("alice")).status_code == 200
        assert api.get(f"{TASKS}/{alices}", headers=by("mona")).status_code == 404
        deprecate = f"{SERVICES}/wordfreq/versions/1.0/deprecate"
        _forbidden(api.post(deprecate, headers=by("alice")), "alice", "user",
                   "deprecating services", "maintainer")  # fmt: skip
        assert api.post(deprecate, headers=by("mona")).status_code == 200


def test_a_build_is_its_maintainers_and_the_admins_only(server: Server) -> None:
    upload = {"context": ("c.tar.gz", _context())}
    with server.run() as api:
        r = api.post(BUILDS, files=upload, headers=by("alice"))
        _forbidden(r, "alice", "user", "building services", "maintainer")
        r = api.post(BUILDS, files=upload, headers=by("mona"))
        assert r.status_code == 202, r.text
        build = r.json()["id"]
        assert r.json()["owner"] == "mona"
        assert api.get(f"{BUILDS}/{build}", headers=by("root")).json()["owner"] == "mona"
        until("built", lambda: api.get(f"{BUILDS}/{build}").json()["state"] == "SUCCEEDED")
        for path in (BUILDS + "/{id}", BUILDS + "/{id}/log"):
            missing_like(api, "alice", "GET", path, build, "0123456789abcdef")
            assert api.get(path.format(id=build), headers=by("mona")).status_code == 200


def test_audit_and_vulns_name_only_the_tasks_one_may_see(server: Server) -> None:
    digest = "sha256:" + "d" * 64
    with server.run() as api:
        alices = api.post(TASKS, json=task(), headers=by("alice")).json()["id"]
        bobs = api.post(TASKS, json=task(), headers=by("bob")).json()["id"]
        assert {wait(api, alices), wait(api, bobs)} == {"COMPLETE"}
        store = Store(make_engine(server.settings().database_url))
        with store.engine.begin() as conn:
            conn.execute(insert(sboms).values(digest=digest, image="localhost/debian",
                                              image_id="", made="now", tool="t",
                                              cyclonedx="{}"))  # fmt: skip
            c = component_of(NUMPY)
            conn.execute(insert(components).values(digest=digest, type=c.type,
                                                   namespace=c.namespace, name=c.name,
                                                   version=c.version, purl=c.purl))  # fmt: skip
        for task_id in (alices, bobs):
            store.record_images(task_id, 1, [ImageUse(0, "localhost/debian:12", digest)])
        store.close()
        for who, expected in (("alice", [alices]), ("bob", [bobs]), ("carol", []),
                              ("root", [alices, bobs])):  # fmt: skip
            report = api.get("/api/v1/audit", params={"q": "numpy"}, headers=by(who)).json()
            assert sorted(t["id"] for t in report["tasks"]) == sorted(expected), who
            assert report["images"][0]["tasks"] == len(expected), who
        missing_like(api, "bob", "GET", "/api/v1/vulns?task={id}", alices, "nope")
        r = api.post("/api/v1/advisories", content=b"[]", headers=by("alice"))
        _forbidden(r, "alice", "user", "importing advisories", "maintainer")
        r = api.post("/api/v1/sboms", json={"image": "localhost/x"}, headers=by("carol"))
        _forbidden(r, "carol", "viewer", "making SBOMs", "user")


def test_the_cache_answers_each_from_their_own_results_only(server: Server, tmp_path: Path) -> None:
    server.config = {"local": {"accounting": False, "cpus": 2, "memory_gb": 8}}
    tag(server, IMAGE, runtime_digest(IMAGE))
    data = tmp_path / "data.txt"
    data.write_text("the input\n")

    def submit(who: str, out: str) -> str:
        r = api.post(TASKS, json=doc(data, tmp_path / out / "copy.txt"), headers=by(who))
        assert r.status_code == 200, r.text
        task_id: str = r.json()["id"]
        assert wait(api, task_id) == "COMPLETE"
        return task_id

    with server.run(local) as api:
        submit("alice", "a")
        until("alice's key", lambda: keys(api))
        [entry] = keys(api)
        assert api.get("/api/v1/cache", headers=by("bob")).json()["entries"] == []
        assert api.get("/api/v1/cache", headers=by("alice")).json()["entries"] == [entry]
        bobs = submit("bob", "b")  # the same task: it runs, alice's result is not bob's
        assert cached_from(api, bobs) is None
        r = api.delete(f"/api/v1/cache/{entry['key']}", headers=by("carol"))
        _forbidden(r, "carol", "viewer", "forgetting cache keys", "user")
        until("bob's key replaces alice's", lambda: keys(api)[0]["task_id"] == bobs)
        key = keys(api)[0]["key"]
        r = api.delete(f"/api/v1/cache/{key}", headers=by("alice"))
        assert r.status_code == 404 and r.json()["detail"] == (
            f"no cache key {key}; `toolship cache ls` lists the stored ones"
        )
        assert api.delete(f"/api/v1/cache/{key}", headers=by("bob")).status_code == 204
