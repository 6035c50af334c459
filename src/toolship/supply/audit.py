"""The answers of ``audit``, ``advisories`` and ``vulns`` on the wire (the server builds
them, the SDK reads them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "AdvisoryImport",
    "AdvisoryInfo",
    "AdvisoryList",
    "AuditImage",
    "AuditOutput",
    "AuditReport",
    "AuditTask",
    "Vuln",
    "VulnReport",
]


class AuditOutput(BaseModel):
    url: str
    path: str
    size_bytes: str = ""
    sha256: str = ""  # "" when the attempt recorded none


class AuditTask(BaseModel):
    """One attempt of a task that ran an image holding the package."""

    id: str
    name: str | None = None
    state: str
    attempt: int  # 1 = the first
    batch_id: str | None = None
    service: str | None = None  # NAME@VERSION when made from a service
    executors: list[int] = Field(default_factory=list)
    images: list[str] = Field(default_factory=list)  # the references as run
    digests: list[str] = Field(default_factory=list)
    outputs: list[AuditOutput] = Field(default_factory=list)


class AuditImage(BaseModel):
    """An image (by manifest digest) whose SBOM holds the package."""

    digest: str
    image: str  # the reference its SBOM was made from
    packages: list[str] = Field(default_factory=list)  # the matching components' purls
    services: list[str] = Field(default_factory=list)  # NAME@VERSION pinning this digest
    tasks: int = 0  # attempts that ran it


class AuditReport(BaseModel):
    query: str
    images: list[AuditImage] = Field(default_factory=list)
    tasks: list[AuditTask] = Field(default_factory=list)
    batches: list[str] = Field(default_factory=list)
    seconds: float = 0.0  # how long the server took


class AdvisoryInfo(BaseModel):
    id: str
    ecosystem: str
    package: str
    modified: str = ""
    summary: str = ""
    aliases: list[str] = Field(default_factory=list)


class AdvisoryList(BaseModel):
    advisories: list[AdvisoryInfo] = Field(default_factory=list)
    total: int = 0


class AdvisoryImport(BaseModel):
    records: int = 0  # OSV records read
    packages: int = 0  # (advisory, package) rows stored or replaced
    unchanged: int = 0  # rows already stored with the same or a newer ``modified``
    skipped: list[str] = Field(default_factory=list)  # records that could not be read, why


class Vuln(BaseModel):
    """An advisory that affects a package of a stored image."""

    advisory: str
    summary: str = ""
    aliases: list[str] = Field(default_factory=list)
    ecosystem: str
    package: str  # the affected component's purl
    version: str
    fixed: list[str] = Field(default_factory=list)  # [] when no fix is known
    digest: str
    images: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    tasks: list[str] = Field(default_factory=list)  # ids of tasks that ran the image


class VulnReport(BaseModel):
    scope: str  # "all", "task ID", "service NAME[@V]", "image REF"
    digests: int = 0  # images (by digest) checked
    without_sbom: list[str] = Field(default_factory=list)  # digests in scope with no SBOM
    advisories: int = 0  # advisories stored
    vulns: list[Vuln] = Field(default_factory=list)
