"""GA4GH Tool Registry Service v2.1 wire models: what ``api/trs.py`` answers.

Field names are TRS's own (snake_case, as its schema spells them); only the fields
toolship fills are declared.  The schema is vendored in ``tests/data/trs``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from toolship.models import ServiceInfo

__all__ = [
    "TOOL_CLASS",
    "TRS_VERSION",
    "Checksum",
    "DescriptorType",
    "DescriptorTypeWithPlain",
    "FileWrapper",
    "ImageData",
    "Tool",
    "ToolClass",
    "ToolVersion",
    "TrsError",
    "TrsServiceInfo",
]

TRS_VERSION = "2.1.0"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrsServiceInfo(ServiceInfo):
    """GA4GH service-info, with which images this server runs (service-info allows more
    properties; the HDRUK TES extension asks for approved registries to be advertised)."""

    image_trust: Literal["any", "digest", "catalog"] = "any"
    approved_registries: list[str] = Field(default_factory=list)


class TrsError(_Wire):
    code: int
    message: str


class Checksum(_Wire):
    checksum: str  # hex, without the algorithm's prefix
    type: str  # GA4GH's hash name: sha-256


class ToolClass(_Wire):
    id: str
    name: str
    description: str


class ImageData(_Wire):
    registry_host: str
    image_name: str  # REPOSITORY@sha256:…, what every task of the version runs
    size: int | None = None
    updated: str | None = None
    checksum: list[Checksum]
    image_type: str = "Docker"


class ToolVersion(_Wire):
    id: str
    url: str
    name: str
    description: str | None = None
    author: list[str] | None = None
    is_production: bool
    images: list[ImageData]
    descriptor_type: list[str]  # none: a service runs through toolship's own run route
    containerfile: bool
    signed: bool


class Tool(_Wire):
    id: str
    url: str
    name: str
    description: str
    organization: str
    toolclass: ToolClass
    has_checker: bool = False
    versions: list[ToolVersion]


class FileWrapper(_Wire):
    content: str
    checksum: list[Checksum]
    image_type: str = "Docker"


class DescriptorType(StrEnum):
    CWL = "CWL"
    WDL = "WDL"
    NFL = "NFL"
    GALAXY = "GALAXY"
    SMK = "SMK"


class DescriptorTypeWithPlain(StrEnum):
    CWL = "CWL"
    WDL = "WDL"
    NFL = "NFL"
    GALAXY = "GALAXY"
    SMK = "SMK"
    PLAIN_CWL = "PLAIN_CWL"
    PLAIN_WDL = "PLAIN_WDL"
    PLAIN_NFL = "PLAIN_NFL"
    PLAIN_GALAXY = "PLAIN_GALAXY"
    PLAIN_SMK = "PLAIN_SMK"


TOOL_CLASS = ToolClass(
    id="CommandLineTool",
    name="CommandLineTool",
    description="A toolship service: one container image, pinned by digest, whose labels "
    "name its inputs, parameters and outputs; run it with `toolship service run NAME` or "
    "POST /api/v1/services/{name}/runs",
)
