"""The services catalog on the wire: what a service takes and gives, its pinned versions.

A service is a tool published once, from an image whose labels describe it (GEF's
``eudat.gef.service.*``, the OCI ``org.opencontainers.image.*`` annotations and
toolship's own ``toolship.service.*``).  A version pins the image by manifest digest:
every task of that version runs ``repository@sha256:…``, never a tag.  The server
builds these replies (``/api/v1/services``) and the SDK reads them; a run request
(:class:`ServiceRun`) is lowered by the server into an ordinary TES task.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SERVICE_TAG",
    "BatchService",
    "BuildInfo",
    "BuildState",
    "InputPort",
    "OutputPort",
    "ParamKind",
    "Parameter",
    "PortKind",
    "RegisterImage",
    "ServiceInterface",
    "ServiceList",
    "ServiceRun",
    "ServiceSummary",
    "ServiceVersion",
    "ServiceVersions",
    "Signature",
]

# The TES tag every task of a service carries: NAME@VERSION.
SERVICE_TAG = "toolship.service"


class _Reply(BaseModel):
    # Keys a newer server adds are kept, not refused (as for every reply of /api/v1).
    model_config = ConfigDict(extra="allow", defer_build=True)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class PortKind(StrEnum):
    FILE = "file"  # one file, staged at path
    DIRECTORY = "directory"  # a folder at path; a file URL is staged into it (GEF's `url`)
    STRING = "string"  # a literal value, written to a file at path


class ParamKind(StrEnum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    CHOICE = "choice"


class InputPort(_Reply):
    name: str  # as labelled: what users type (``--in NAME=URL``)
    key: str  # positional alias: input1, input2, … (GEF's input.<N>, in label order)
    kind: PortKind = PortKind.DIRECTORY
    path: str  # inside the container
    required: bool = True
    default: str | None = None  # a URL (file, directory) or the value (string)
    filename: str | None = None  # the file's name inside a directory port (GEF's filename)
    description: str = ""


class Parameter(_Reply):
    name: str
    kind: ParamKind = ParamKind.STRING
    required: bool = False
    default: str | int | float | bool | None = None
    minimum: float | None = None  # int and float
    maximum: float | None = None
    choices: list[str] = Field(default_factory=list)  # choice
    description: str = ""


class OutputPort(_Reply):
    name: str
    key: str  # output1, output2, …
    kind: PortKind = PortKind.DIRECTORY  # file or directory
    path: str
    description: str = ""


class ServiceInterface(_Reply):
    """What the labels say: ports, parameters, the command and default resources."""

    inputs: list[InputPort] = Field(default_factory=list)
    parameters: list[Parameter] = Field(default_factory=list)
    outputs: list[OutputPort] = Field(default_factory=list)
    # The command: toolship's template with {name} placeholders (parameters, and ports:
    # their container path), else the image's CMD, as GEF runs it; None: the image has none.
    command: list[str] | None = None
    # True: command is the template (toolship.service.command), filled at each run;
    # False: it is the image's CMD, run as it is (braces and all).
    template: bool = False
    workdir: str | None = None
    # Default resources of a run (the user's options override them): TES names.
    cpu_cores: int | None = None
    ram_gb: float | None = None
    disk_gb: float | None = None
    timeout: str | None = None


class Signature(_Reply):
    """Whether the image's signature verified at registration, and by which key."""

    verified: bool
    key: str | None = None  # the configured key's name (its fingerprint or file)
    kind: str | None = None  # gpg or sigstore
    message: str = ""


class ServiceVersion(_Reply):
    """One immutable version: (name, version, repository, manifest digest, ports)."""

    name: str
    version: str
    description: str = ""
    repository: str  # e.g. 127.0.0.1:5055/toolship/clone or localhost/clone
    digest: str  # sha256:… of the manifest
    image: str  # repository@digest: what every task of this version runs
    image_id: str = ""  # the config digest (podman's image id)
    size: int | None = None  # bytes
    created: str | None = None  # when the image was built (RFC 3339)
    registered: str  # when this version was registered (RFC 3339)
    source: str = ""  # build, local or registry
    reference: str = ""  # what was registered (IMAGE:TAG as given), or the build's tag
    labels: dict[str, str] = Field(default_factory=dict)
    interface: ServiceInterface = Field(default_factory=ServiceInterface)
    containerfile: bool = False  # the Containerfile it was built from is kept
    signature: Signature | None = None
    deprecated: bool = False
    # OCI annotations: source URL, licenses, revision, authors, documentation.
    oci: dict[str, str] = Field(default_factory=dict)


class ServiceSummary(_Reply):
    name: str
    description: str = ""
    latest: str  # the newest version that is not deprecated
    digest: str
    versions: int


class ServiceList(_Reply):
    services: list[ServiceSummary]


class ServiceVersions(_Reply):
    name: str
    versions: list[ServiceVersion]  # newest first


class RegisterImage(_Request):
    """``POST /api/v1/services``: register an image that exists (locally or in a registry)."""

    image: str = Field(description="IMAGE[:TAG] or IMAGE@sha256:…")
    name: str | None = Field(default=None, description="Overrides the name the labels give")
    version: str | None = Field(default=None, description="Overrides the labels' version")


class ServiceRun(_Request):
    """``POST /api/v1/services/{name}/runs``: run a service; lowered to a TES task."""

    version: str | None = Field(default=None, description="Default: the latest version")
    inputs: dict[str, str] = Field(
        default_factory=dict, description="Port name (or inputN) → URL (string ports: the value)"
    )
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(
        default_factory=dict, description="Port name (or outputN) → URL"
    )
    task: dict[str, Any] | None = Field(
        default=None,
        description="The rest of a TES task (name, tags, resources, extra inputs and outputs; "
        "one executor's env and workdir): what `toolship run` would send, without image "
        "and command",
    )


class BatchService(ServiceRun):
    """A sweep's or a map's members as runs of one service (``BatchRequest.service``).

    Each member is lowered on its own, after ``{key}`` placeholders in the inputs',
    outputs' and parameters' values and in the task's name took the member's values:
    a sweep row's, or a map's ``{item}``, ``{input}``, ``{inputs}``.
    """

    name: str = Field(description="The service")
    port: str | None = Field(
        default=None,
        description="Maps: the directory input port each member's objects are staged into "
        "(default: the service's only directory input port)",
    )


class BuildState(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class BuildInfo(_Reply):
    """``GET /api/v1/builds/{id}``; its log streams from ``/api/v1/builds/{id}/log``."""

    id: str
    state: BuildState
    name: str | None = None  # as asked; the labels' name once built
    started: str
    finished: str | None = None
    error: str | None = None  # FAILED: the cause (the failing step's output is in the log)
    service: ServiceVersion | None = None  # SUCCEEDED: the version it registered
    owner: str | None = None  # who started it (only they, and admins, see it)
