"""Package queries, SBOM components and version matching (supply.purls)."""

from __future__ import annotations

import json

import pytest

from toolship.errors import InvalidRequest
from toolship.supply.purls import (
    Component,
    Constraint,
    component_of,
    components_of,
    parse_query,
)

LIBSSL = component_of(
    "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
)
OPENSSL = component_of("pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12")
NUMPY = component_of("pkg:pypi/numpy@1.24.2")


def test_the_forms_of_a_query() -> None:
    purl = parse_query("pkg:deb/debian/openssl@3.0.11")
    assert (purl.type, purl.namespace, purl.name) == ("deb", "debian", "openssl")
    assert purl.constraints == (Constraint("=", "3.0.11"),)
    bare = parse_query("openssl@3.0.11")
    assert (bare.type, bare.name, bare.constraints) == (
        None,
        "openssl",
        (Constraint("=", "3.0.11"),),
    )
    assert parse_query("numpy").constraints == ()
    assert parse_query("numpy@<1.26").constraints == (Constraint("<", "1.26"),)
    assert parse_query("numpy@>=1.20,<1.26").constraints == (
        Constraint(">=", "1.20"),
        Constraint("<", "1.26"),
    )
    assert parse_query("pkg:pypi/numpy@<1.26").constraints == (Constraint("<", "1.26"),)


def test_inspector_dpkg_purls_become_deb_debian() -> None:
    query = parse_query("pkg:dpkg/openssl@3.0.11?distro=debian-12")
    assert (query.type, query.namespace) == ("deb", "debian")
    component = component_of("pkg:dpkg/ubuntu/zlib1g@1.2.13")
    assert component.purl == "pkg:deb/ubuntu/zlib1g@1.2.13"


def test_a_debian_upstream_version_matches_its_revisions() -> None:
    assert parse_query("openssl@3.0.11").matches(OPENSSL)
    assert parse_query("pkg:deb/debian/openssl@3.0.11").matches(OPENSSL)
    assert parse_query("openssl@3.0.11-1~deb12u2").matches(OPENSSL)
    assert not parse_query("openssl@3.0.12").matches(OPENSSL)
    assert not parse_query("openssl@3.0.1").matches(OPENSSL)
    assert parse_query("openssl@<3.0.12").matches(OPENSSL)
    assert not parse_query("openssl@<3.0.11").matches(OPENSSL)


def test_a_binary_package_answers_for_its_source() -> None:
    assert parse_query("openssl@3.0.11").matches(LIBSSL)
    assert not parse_query("pkg:pypi/openssl").matches(LIBSSL)


def test_pypi_ranges_and_names() -> None:
    assert parse_query("numpy@<1.26").matches(NUMPY)
    assert not parse_query("numpy@>=1.26").matches(NUMPY)
    assert parse_query("numpy@1.24.2.0").matches(NUMPY)
    assert parse_query("pkg:pypi/numpy").matches(NUMPY)
    assert not parse_query("pkg:deb/debian/numpy").matches(NUMPY)
    yaml = component_of("pkg:pypi/PyYAML@6.0")
    assert yaml.name == "pyyaml"
    assert parse_query("PyYAML").matches(yaml)


@pytest.mark.parametrize("text", ["", "numpy@<", "numpy@<<1", "a b", "pkg:", "numpy@>=1,"])
def test_a_bad_query_says_how_to_write_one(text: str) -> None:
    with pytest.raises(InvalidRequest, match=r"NAME|purl|pkg:"):
        parse_query(text)


def test_components_of_a_cyclonedx_document() -> None:
    doc = {
        "bomFormat": "CycloneDX",
        "components": [
            {"type": "operating-system", "name": "debian"},
            {"type": "library", "name": "numpy", "purl": "pkg:pypi/numpy@1.24.2"},
            {
                "type": "library",
                "name": "libssl3",
                "purl": LIBSSL.purl,
                "components": [{"type": "library", "purl": "pkg:dpkg/zlib1g@1.2.13"}],
            },
            {"type": "library", "name": "twice", "purl": "pkg:pypi/numpy@1.24.2"},
            {"type": "library", "name": "broken", "purl": "not a purl"},
        ],
    }
    found = components_of(json.dumps(doc))
    assert found == [
        Component("deb", "debian", "libssl3", "3.0.11-1~deb12u2", LIBSSL.purl),
        Component("deb", "debian", "zlib1g", "1.2.13", "pkg:deb/debian/zlib1g@1.2.13"),
        Component("pypi", "", "numpy", "1.24.2", "pkg:pypi/numpy@1.24.2"),
    ]
    assert components_of(doc) == found
