"""The supply chain's half of the SDK that answers questions about packages:
:class:`Audit`, mixed into :class:`toolship.client.Client` — which results used a
package, OSV advisories (imported from local files, no network) and the stored images
they affect."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from toolship.client.base import BaseClient
from toolship.supply.audit import AdvisoryImport, AdvisoryList, AuditReport, VulnReport

__all__ = ["Audit"]

AUDIT = "/api/v1/audit"
ADVISORIES = "/api/v1/advisories"
VULNS = "/api/v1/vulns"
_CHUNK_BYTES = 4 * 1024 * 1024  # records per upload: well under the server's body limit


def _chunks(records: Iterable[tuple[str, Any]]) -> Iterator[list[Any]]:
    """Lists of records, each under :data:`_CHUNK_BYTES` as JSON (a larger record alone)."""
    held: list[Any] = []
    size = 0
    for _, doc in records:
        length = len(json.dumps(doc, separators=(",", ":")))
        if held and size + length > _CHUNK_BYTES:
            yield held
            held, size = [], 0
        held.append(doc)
        size += length + 1
    if held:
        yield held


class Audit(BaseClient):
    """Audit, advisories and vulnerabilities; :class:`toolship.client.Client` mixes it in."""

    def audit(self, query: str) -> AuditReport:
        """Every stored image whose SBOM holds a package, and every task attempt that ran
        one: ``pkg:deb/debian/openssl@3.0.11``, ``openssl@3.0.11``, ``numpy``,
        ``numpy@<1.26``."""
        return self._read(AuditReport, "GET", AUDIT, params={"q": query})

    def import_advisories(self, *paths: str | Path) -> AdvisoryImport:
        """Import OSV files (OSV's ``all.zip``, a record, or a JSON list of records).

        Each file is read here and sent in parts, so an ``all.zip`` of any size fits
        the server's request limit; the counts of every part are added up.
        """
        # Read here, not at import: univers (for versions) takes ~0.15 s to load.
        from toolship.supply.osv import read_records

        total = AdvisoryImport()
        for path in paths:
            source = Path(path)
            try:
                data = source.read_bytes()
            except OSError as exc:
                raise FileNotFoundError(f"cannot read {source}: {exc.strerror}") from None
            try:
                records = list(read_records(data, source.name))
            except ValueError as exc:
                raise ValueError(f"{exc}: pass OSV files (all.zip, or .json records)") from None
            for body in _chunks(records):
                part = self._read(AdvisoryImport, "POST", ADVISORIES, json=body)
                total.records += part.records
                total.packages += part.packages
                total.unchanged += part.unchanged
                total.skipped += part.skipped
        return total

    def advisories(self, package: str | None = None, limit: int = 1000) -> AdvisoryList:
        """The imported advisories, one line per (advisory, affected package)."""
        params: dict[str, str | int] = {"limit": limit}
        if package:
            params["package"] = package
        return self._read(AdvisoryList, "GET", ADVISORIES, params=params)

    def vulns(
        self, *, task: str | None = None, service: str | None = None, image: str | None = None
    ) -> VulnReport:
        """Imported advisories that affect stored images: all of them, or those a task
        ran, a service (``NAME`` or ``NAME@VERSION``) pins, or an image reference names."""
        params = {k: v for k, v in (("task", task), ("service", service), ("image", image)) if v}
        return self._read(VulnReport, "GET", VULNS, params=params or None)
