"""The catalog's store: versions are immutable, newest first, deprecated ones hidden."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from toolship.db import Store
from toolship.db.catalog import CatalogStore
from toolship.errors import Conflict, NotFound
from toolship.services import ServiceVersion


def _version(name: str, version: str, digest: str, description: str = "") -> ServiceVersion:
    return ServiceVersion(
        name=name,
        version=version,
        description=description,
        repository=f"localhost/{name}",
        digest=digest,
        image=f"localhost/{name}@{digest}",
        registered="2026-11-28T00:00:00Z",
    )


@pytest.fixture
def catalog(database_url: str) -> Iterator[CatalogStore]:
    store = Store.open(database_url)
    yield CatalogStore(store.engine)
    store.close()


def test_newest_version_is_the_latest_and_deprecated_ones_are_hidden(
    catalog: CatalogStore,
) -> None:
    catalog.add(_version("clone", "1.0", "sha256:" + "a" * 64, "Copy input to output"))
    catalog.add(_version("clone", "1.1", "sha256:" + "b" * 64, "Copy input to output"))
    catalog.add(_version("wc", "0.1", "sha256:" + "c" * 64, "Count lines"))
    assert catalog.get("clone").version == "1.1"
    assert [v.version for v in catalog.versions("clone")] == ["1.1", "1.0"]
    catalog.deprecate("clone", "1.1")
    assert catalog.get("clone").version == "1.0"
    assert catalog.get("clone", "1.1").deprecated
    assert [(s.name, s.latest, s.versions) for s in catalog.summaries()] == [
        ("clone", "1.0", 1),
        ("wc", "0.1", 1),
    ]
    assert [s.name for s in catalog.summaries("LINES")] == ["wc"]
    assert [v.version for v in catalog.by_digest("sha256:" + "b" * 64)] == ["1.1"]


def test_a_version_never_changes(catalog: CatalogStore) -> None:
    catalog.add(_version("clone", "1.0", "sha256:" + "a" * 64), containerfile="FROM x\n")
    with pytest.raises(Conflict, match=r"already has a version '1\.0'"):
        catalog.add(_version("clone", "1.0", "sha256:" + "b" * 64))
    assert catalog.get("clone", "1.0").digest == "sha256:" + "a" * 64
    assert catalog.containerfile("clone", "1.0") == "FROM x\n"


def test_missing_names_say_what_exists(catalog: CatalogStore) -> None:
    catalog.add(_version("clone", "1.0", "sha256:" + "a" * 64))
    with pytest.raises(NotFound, match=r"no service named 'wc' \(services: 'clone'\)"):
        catalog.get("wc")
    with pytest.raises(NotFound, match=r"no version '2.0' \(versions: 1.0\)"):
        catalog.get("clone", "2.0")
    catalog.deprecate("clone", "1.0")
    with pytest.raises(NotFound, match="every version of service 'clone' is deprecated"):
        catalog.get("clone")
