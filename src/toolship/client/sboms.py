"""SBOMs in the SDK: :class:`Sboms`, mixed into :class:`toolship.client.Client`.

An SBOM is kept by the server once per image digest; these requests make one (or find
the stored one) and fetch it in a format: ``cyclonedx`` (CycloneDX 1.6 JSON),
``cyclonedx-1.4`` or ``spdx`` (SPDX 2.3 JSON).
"""

from __future__ import annotations

from urllib.parse import quote

from toolship.client.base import BaseClient
from toolship.errors import ToolshipError
from toolship.supply.sboms import MakeSbom, SbomFormat, SbomInfo

__all__ = ["Sboms"]

SBOMS = "/api/v1/sboms"
_SCAN_TIMEOUT = 900.0  # a first scan of a large image runs syft on the server


class Sboms(BaseClient):
    def make_sbom(self, image: str) -> SbomInfo:
        """The server's SBOM record of ``image`` (a reference it can see; a tag means its
        current digest), made now when it has none.  ``error`` says why none could be made."""
        body = MakeSbom(image=image).model_dump()
        return self._read(SbomInfo, "POST", SBOMS, json=body, timeout=_SCAN_TIMEOUT)

    def sbom_info(self, digest: str) -> SbomInfo:
        return self._read(SbomInfo, "GET", f"{SBOMS}/{quote(digest, safe=':')}/info")

    def sbom(self, digest: str, format: SbomFormat = "cyclonedx") -> str:
        """The stored SBOM of a manifest digest, as the document's text."""
        path = f"{SBOMS}/{quote(digest, safe=':')}"
        return self._send("GET", path, params={"format": format}).text

    def image_sbom(self, image: str, format: SbomFormat = "cyclonedx") -> str:
        """The SBOM of ``image``, made when missing; raises when it cannot be made."""
        info = self.make_sbom(image)
        if info.error:
            raise ToolshipError(f"no SBOM of {image}: {info.error}")
        return self.sbom(info.digest, format)

    def task_sbom(
        self, task_id: str, *, executor: int = 0, format: SbomFormat = "cyclonedx"
    ) -> str:
        """The SBOM of the image (by the digest it recorded) that executor ``executor`` of
        the task's latest attempt ran; made when missing."""
        path = f"/api/v1/tasks/{quote(task_id, safe='')}/sbom"
        params: dict[str, str | int] = {"executor": executor, "format": format}
        return self._send("GET", path, params=params, timeout=_SCAN_TIMEOUT).text
