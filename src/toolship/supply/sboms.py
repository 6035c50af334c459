"""SBOMs on the wire and at rest: one per manifest digest, in three formats.

An SBOM is made once per image digest (``provenance.sboms``) and kept whole in each
format a consumer asks for: CycloneDX 1.6 (the current one), CycloneDX 1.4 (what
Amazon Inspector's export writes, for tools that read only that) and SPDX 2.3.  When
none could be made (no syft, an image this host does not hold, an exotic format) the
record says why instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, Field

from toolship.errors import InvalidRequest, NotFound

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "MakeSbom",
    "SbomFormat",
    "SbomInfo",
    "StoredSbom",
    "check_format",
]

SbomFormat = Literal["cyclonedx", "cyclonedx-1.4", "spdx"]
FORMATS: tuple[str, ...] = get_args(SbomFormat)
MEDIA_TYPES: dict[str, str] = {
    "cyclonedx": "application/vnd.cyclonedx+json; version=1.6",
    "cyclonedx-1.4": "application/vnd.cyclonedx+json; version=1.4",
    "spdx": "application/spdx+json",
}


def check_format(name: str) -> SbomFormat:
    if name not in FORMATS:
        raise InvalidRequest(
            f"unknown SBOM format {name!r}: use one of {', '.join(FORMATS)} "
            "(cyclonedx is CycloneDX 1.6, spdx is SPDX 2.3)"
        )
    return name  # type: ignore[return-value]


class MakeSbom(BaseModel):
    """``POST /api/v1/sboms``: the image whose SBOM to make (when not made yet)."""

    image: str = Field(
        description="An image reference this server can see: localhost/NAME[:TAG], "
        "REGISTRY/NAME@sha256:…"
    )


class SbomInfo(BaseModel):
    """What is stored for one digest, without the documents themselves."""

    digest: str  # the image's manifest digest: the key
    image: str  # the reference it was made from
    image_id: str = ""
    made: str  # RFC 3339
    tool: str  # "syft 1.18.1"
    error: str | None = None  # why no SBOM could be made (then formats is empty)
    formats: list[str] = Field(default_factory=list)
    components: int = 0  # packages with a purl (what audit finds)


@dataclass(frozen=True, slots=True)
class StoredSbom:
    """One row of the ``sboms`` table."""

    digest: str
    image: str
    image_id: str
    made: str
    tool: str
    error: str | None = None
    cyclonedx: str | None = None  # CycloneDX 1.6 JSON
    cyclonedx14: str | None = None
    spdx: str | None = None  # SPDX 2.3 JSON

    @property
    def formats(self) -> list[str]:
        docs = (self.cyclonedx, self.cyclonedx14, self.spdx)
        return [name for name, doc in zip(FORMATS, docs, strict=True) if doc is not None]

    def document(self, format: str) -> str:
        """The SBOM in ``format``; NotFound saying why when it could not be made."""
        check_format(format)
        doc = {"cyclonedx": self.cyclonedx, "cyclonedx-1.4": self.cyclonedx14}.get(
            format, self.spdx
        )
        if doc is None:
            why = self.error or f"it was made without {format}"
            raise NotFound(
                f"no {format} SBOM of {self.image} ({self.digest}): {why}; "
                "fix that, then ask again with `toolship sbom IMAGE`"
            )
        return doc

    def info(self, components: int = 0) -> SbomInfo:
        return SbomInfo(
            digest=self.digest,
            image=self.image,
            image_id=self.image_id,
            made=self.made,
            tool=self.tool,
            error=self.error,
            formats=self.formats,
            components=components,
        )
