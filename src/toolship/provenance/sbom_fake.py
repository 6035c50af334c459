"""A scanner in memory, for the API tests: no syft, no podman.

Every image holds the same few packages (``purls``) unless a test says otherwise;
an image named in ``refused`` cannot be scanned, as one this host does not hold.
"""

from __future__ import annotations

import json
import threading

from toolship.errors import InvalidRequest
from toolship.provenance.sbom import Documents

__all__ = ["FakeScanner"]

PURLS = (
    "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl",
    "pkg:pypi/numpy@1.24.2",
)


class FakeScanner:
    def __init__(self, purls: tuple[str, ...] = PURLS) -> None:
        self.purls = purls
        self.by_name: dict[str, tuple[str, ...]] = {}  # repository → its packages
        self.refused: dict[str, str] = {}  # reference or repository → the error
        self.scanned: list[str] = []  # every reference scanned, in order
        self.hold = threading.Event()  # set: scans return at once
        self.hold.set()

    def scan(self, reference: str, *, name: str, digest: str) -> Documents:
        self.hold.wait(30)
        self.scanned.append(reference)
        why = self.refused.get(reference) or self.refused.get(name)
        if why is not None:
            raise InvalidRequest(why)
        purls = self.by_name.get(name, self.purls)
        components = [
            {"bom-ref": p, "type": "library", "name": p.split("/")[-1].split("@")[0], "purl": p}
            for p in purls
        ]
        subject = {"type": "container", "name": name, "version": digest}

        def cyclonedx(version: str) -> str:
            return json.dumps(
                {
                    "bomFormat": "CycloneDX",
                    "specVersion": version,
                    "version": 1,
                    "metadata": {"component": subject},
                    "components": components,
                }
            )

        spdx = {
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": name,
            "packages": [{"name": c["name"], "SPDXID": f"SPDXRef-{i}"} for i, c in
                         enumerate(components)],
        }  # fmt: skip
        return Documents("fake 1.0", cyclonedx("1.6"), cyclonedx("1.4"), json.dumps(spdx))

    def stop(self) -> None:
        self.hold.set()
