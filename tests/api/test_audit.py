"""audit, advisories and vulns in process: tasks run on the fake backend, then their
images and SBOM components are written as the store and the SBOM store write them."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from rich.console import Console
from sqlalchemy import insert

from tests.api.conftest import TOKEN, Server, create, wait
from toolship.cli import audit as audit_cli
from toolship.cli.audit import audit as audit_command
from toolship.cli.audit import vulns as vulns_command
from toolship.cli.context import Ctx
from toolship.client import Client
from toolship.db.schema import components, sboms
from toolship.db.store import Store, make_engine
from toolship.supply.images import ImageUse
from toolship.supply.purls import component_of

OSV = Path(__file__).parent.parent / "data" / "osv"
DEBIAN, BUSYBOX = "sha256:" + "d" * 64, "sha256:" + "b" * 64
LIBSSL = "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
PACKAGES = {
    DEBIAN: ["pkg:pypi/numpy@1.24.2", LIBSSL, "pkg:deb/debian/python3@3.11.2-1+b1"],
    BUSYBOX: ["pkg:generic/busybox@1.35.0"],
}


@pytest.fixture
def sdk(server: Server) -> Iterator[tuple[Client, dict[str, list[str]]]]:
    """Two tasks ran the Debian image, one busybox; both SBOMs are stored."""
    with server.run() as api:
        ran = {DEBIAN: [create(api, "true"), create(api, "true")], BUSYBOX: [create(api, "true")]}
        for ids in ran.values():
            for task_id in ids:
                assert wait(api, task_id) == "COMPLETE"
        store = Store(make_engine(server.settings().database_url))
        with store.engine.begin() as conn:
            for digest, purls in PACKAGES.items():
                image = "localhost/debian" if digest == DEBIAN else "localhost/busybox"
                conn.execute(
                    insert(sboms).values(digest=digest, image=image, image_id="", made="now",
                                         tool="syft test", cyclonedx="{}")
                )  # fmt: skip
                parts = [component_of(p) for p in purls]
                conn.execute(
                    insert(components),
                    [{"digest": digest, "type": c.type, "namespace": c.namespace,
                      "name": c.name, "version": c.version, "purl": c.purl} for c in parts],
                )  # fmt: skip
        for digest, ids in ran.items():
            image = "localhost/debian:12" if digest == DEBIAN else "localhost/busybox"
            for task_id in ids:
                store.record_images(task_id, 1, [ImageUse(0, image, digest)])
        store.close()
        yield Client("http://toolship.test", TOKEN, transport=api._transport), ran


def test_every_form_of_a_query_finds_the_tasks_of_the_image(
    sdk: tuple[Client, dict[str, list[str]]],
) -> None:
    client, ran = sdk
    for query in ("pkg:deb/debian/openssl@3.0.11", "openssl@3.0.11", "numpy", "numpy@<1.26",
                  "pkg:dpkg/libssl3@3.0.11-1~deb12u2", "pkg:pypi/numpy@1.24.2"):  # fmt: skip
        report = client.audit(query)
        assert [i.digest for i in report.images] == [DEBIAN], query
        assert sorted(t.id for t in report.tasks) == sorted(ran[DEBIAN]), query
        assert report.images[0].image == "localhost/debian"
        assert report.tasks[0].images == ["localhost/debian:12"]
    for query in ("numpy@>=1.26", "openssl@3.0.12", "pkg:pypi/openssl", "zlib"):
        report = client.audit(query)
        assert (report.images, report.tasks) == ([], []), query
    assert [t.id for t in client.audit("busybox").tasks] == ran[BUSYBOX]


def test_a_bad_query_is_a_400_that_says_how(api: httpx.Client) -> None:
    r = api.get("/api/v1/audit", params={"q": "numpy@<<1"})
    assert r.status_code == 400
    assert "NAME@VERSION" in r.json()["detail"]


def test_imported_advisories_affect_that_images_tasks_and_nothing_else(
    sdk: tuple[Client, dict[str, list[str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, ran = sdk
    all_zip = tmp_path / "all.zip"
    with zipfile.ZipFile(all_zip, "w") as archive:
        for path in sorted(OSV.glob("*.json")):
            archive.write(path, path.name)
    imported = client.import_advisories(all_zip)
    assert (imported.records, imported.packages, imported.skipped) == (4, 5, [])
    again = client.import_advisories(OSV / "numpy.json")
    assert (again.packages, again.unchanged) == (0, 1)
    assert client.advisories(package="numpy").total == 2

    report = client.vulns()
    found = {(v.advisory, v.digest): v for v in report.vulns}
    assert set(found) == {
        ("TOOLSHIP-TEST-2024-0001", DEBIAN),
        ("TOOLSHIP-TEST-DSA-0002", DEBIAN),
    }
    numpy = found["TOOLSHIP-TEST-2024-0001", DEBIAN]
    assert (numpy.package, numpy.fixed) == ("pkg:pypi/numpy@1.24.2", ["1.26.0"])
    assert sorted(numpy.tasks) == sorted(ran[DEBIAN])
    assert found["TOOLSHIP-TEST-DSA-0002", DEBIAN].fixed == ["3.0.13-1~deb12u1"]
    assert client.vulns(task=ran[BUSYBOX][0]).vulns == []
    one = client.vulns(task=ran[DEBIAN][1])
    assert {tuple(v.tasks) for v in one.vulns} == {(ran[DEBIAN][1],)}
    assert {v.digest for v in client.vulns(image="localhost/debian:12").vulns} == {DEBIAN}

    ctx = Ctx(server=None, token=None, _client=client)
    # A console as wide as the table: rich reads COLUMNS once, when the CLI's module loads.
    monkeypatch.setattr(audit_cli, "out", Console(highlight=False, soft_wrap=True, width=300))
    shown = CliRunner().invoke(vulns_command, [], obj=ctx, catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "TOOLSHIP-TEST-2024-0001" in shown.output and "1.26.0" in shown.output
    listed = CliRunner().invoke(audit_command, ["numpy@<1.26"], obj=ctx, catch_exceptions=False)
    assert all(task_id in listed.output for task_id in ran[DEBIAN])
    assert ran[BUSYBOX][0] not in listed.output


def test_a_file_that_is_no_osv_is_a_400(api: httpx.Client) -> None:
    r = api.post("/api/v1/advisories", content=b"PK\x03\x04broken")
    assert r.status_code == 400
    assert "zip" in r.json()["detail"]
    r = api.post("/api/v1/advisories", content=_zip_of(b"[1, 2]"))
    assert r.status_code == 200
    assert len(r.json()["skipped"]) == 2


def _zip_of(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.json", data)
    return buffer.getvalue()
