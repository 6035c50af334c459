"""OSV records: reading them (files, lists, all.zip) and which versions they affect."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from toolship.supply.osv import MAX_RECORD_BYTES, affected_by, parse_record, read_records
from toolship.supply.purls import component_of

OSV = Path(__file__).parent.parent / "data" / "osv"
LIBSSL = component_of(
    "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_records_from_a_zip_a_record_and_a_list() -> None:
    data = _zip({p.name: p.read_bytes() for p in sorted(OSV.glob("*.json"))} | {"README": b"x"})
    ids = [doc["id"] for _, doc in read_records(data, "all.zip")]
    assert ids == [
        "TOOLSHIP-TEST-2024-0001",
        "TOOLSHIP-TEST-DSA-0002",
        "TOOLSHIP-TEST-2024-0003",
        "TOOLSHIP-TEST-2024-0004",
    ]
    one = list(read_records((OSV / "numpy.json").read_bytes(), "numpy.json"))
    assert one[0][0] == "numpy.json"


def test_a_member_too_large_for_a_record_is_refused_unread() -> None:
    data = _zip({"bomb.json": b" " * (MAX_RECORD_BYTES + 1)})
    with pytest.raises(ValueError, match=r"bomb\.json.*more than an OSV record"):
        list(read_records(data, "all.zip"))


def test_not_json_names_the_file() -> None:
    with pytest.raises(ValueError, match=r"x\.json: not JSON"):
        list(read_records(b"{nope", "x.json"))


def _record(name: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads((OSV / name).read_text())
    return doc


def test_ecosystem_ranges_of_pypi() -> None:
    (numpy,) = parse_record(_record("numpy.json")).affected
    assert affected_by(numpy, component_of("pkg:pypi/numpy@1.24.2")) == ["1.26.0"]
    assert affected_by(numpy, component_of("pkg:pypi/numpy@1.25.9")) == ["1.26.0"]
    assert affected_by(numpy, component_of("pkg:pypi/numpy@1.26.0")) is None
    assert affected_by(numpy, component_of("pkg:deb/debian/numpy@1.24.2")) is None


def test_debian_advisories_name_the_source_and_the_release() -> None:
    deb12, deb11 = parse_record(_record("openssl.json")).affected
    assert (deb12.purl_type, deb12.namespace, deb12.release) == ("deb", "debian", "12")
    assert affected_by(deb12, LIBSSL, "openssl") == ["3.0.13-1~deb12u1"]
    assert affected_by(deb12, LIBSSL) is None  # libssl3 is not the source's name
    assert affected_by(deb11, LIBSSL, "openssl") is None  # another release
    fixed = component_of(
        "pkg:deb/debian/libssl3@3.0.13-1~deb12u1?distro=debian-12&upstream=openssl"
    )
    assert affected_by(deb12, fixed, "openssl") is None


def test_intervals_and_last_affected() -> None:
    later, requests = (parse_record(r) for r in _record("others.json"))  # type: ignore[attr-defined]
    (numpy,) = later.affected
    assert affected_by(numpy, component_of("pkg:pypi/numpy@1.24.2")) is None
    assert affected_by(numpy, component_of("pkg:pypi/numpy@2.0.0")) == ["2.0.1"]
    (req,) = requests.affected
    assert affected_by(req, component_of("pkg:pypi/requests@2.31.0")) == []
    assert affected_by(req, component_of("pkg:pypi/requests@2.32.0")) is None
    two = {"introduced": "0"}, {"fixed": "1.0"}, {"introduced": "2.0"}, {"fixed": "2.5"}
    doc = {"id": "X", "affected": [{"package": {"ecosystem": "PyPI", "name": "p"},
           "ranges": [{"type": "ECOSYSTEM", "events": list(two)}]}]}  # fmt: skip
    (p,) = parse_record(doc).affected
    assert affected_by(p, component_of("pkg:pypi/p@0.5")) == ["1.0"]
    assert affected_by(p, component_of("pkg:pypi/p@1.5")) is None
    assert affected_by(p, component_of("pkg:pypi/p@2.2")) == ["2.5"]


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ([], "JSON object"),
        ({"summary": "x"}, "needs an 'id'"),
        ({"id": "A", "affected": {}}, "not a list"),
        ({"id": "A", "affected": [{"ranges": []}]}, "without a package"),
        ({"id": "A", "affected": [{"package": {"name": "x"}}]}, "ecosystem and a name"),
    ],
)
def test_an_unusable_record_says_why(doc: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_record(doc, "f.json")
