"""GA4GH TES v1.1 wire models.

Requests are parsed strictly (unknown fields are refused with a 400 naming
them) and responses carry only spec fields, because real clients such as
py-tes reject fields they do not know.  Checks that need no configuration
(absolute paths, no ``..``, wildcards only in outputs) live here; checks that
need settings (allowed roots, machine size) live in :mod:`toolship.engine.validate`.
"""

from __future__ import annotations

import posixpath
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from toolship.services import BatchService
from toolship.states import ACTIVE_STATES, TaskState
from toolship.wildcards import has_wildcard

__all__ = [
    "REPLY",
    "BatchInfo",
    "BatchList",
    "BatchMap",
    "BatchReport",
    "BatchRequest",
    "CancelBatchResponse",
    "CreateBatchResponse",
    "CreateTaskResponse",
    "CreatedUser",
    "ErrorResponse",
    "EventInfo",
    "EventList",
    "Executor",
    "ExecutorLog",
    "FairShareStanding",
    "FileType",
    "Input",
    "IssuedToken",
    "LegacyServiceInfo",
    "ListTasksResponse",
    "MapSpec",
    "MemberReport",
    "NewUser",
    "Output",
    "OutputFileLog",
    "Prices",
    "QuotaLimits",
    "QuotaReport",
    "QuotaUse",
    "RankEnd",
    "ReportTotals",
    "Resources",
    "Scaling",
    "ScalingPoint",
    "ServiceInfo",
    "ServiceOrganization",
    "ServiceType",
    "SlurmJob",
    "StagingProgress",
    "Task",
    "TaskDetails",
    "TaskLog",
    "TaskView",
    "TaskWait",
    "TokenInfo",
    "UserInfo",
    "UserList",
    "View",
    "Whoami",
    "distinct_inputs",
    "is_reply",
    "static_dir",
]

MAX_CONTENT_BYTES = 1024 * 1024
# Container paths that must never be replaced by a mount.
FORBIDDEN_ROOTS = ("/proc", "/sys", "/dev")


class View(StrEnum):
    MINIMAL = "MINIMAL"
    BASIC = "BASIC"
    FULL = "FULL"


class FileType(StrEnum):
    FILE = "FILE"
    DIRECTORY = "DIRECTORY"


def static_dir(path: str) -> str:
    """The directory part of ``path`` before its first wildcard segment."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if has_wildcard(part):
            return "/".join(parts[:i]) or "/"
    return path


def check_container_path(path: str, what: str, *, allow_wildcards: bool = False) -> str:
    """Refuse relative, non-normal and escaping container paths."""
    if not path.startswith("/"):
        raise ValueError(f"{what} {path!r} must be an absolute path inside the container")
    if "\x00" in path:
        raise ValueError(f"{what} {path!r} contains a NUL byte")
    parts = path.split("/")
    if ".." in parts:
        raise ValueError(f"{what} {path!r} must not contain '..' (it would escape its directory)")
    if not allow_wildcards and has_wildcard(path):
        raise ValueError(f"{what} {path!r} must not contain wildcards (* ? [)")
    norm = posixpath.normpath(path)
    if norm == "/":
        raise ValueError(f"{what} must name a file or directory, not '/'")
    for root in FORBIDDEN_ROOTS:
        if norm == root or norm.startswith(root + "/"):
            raise ValueError(f"{what} {path!r} is inside {root}, which toolship does not mount")
    return norm


# A container path as the schema states it: absolute (check_container_path refuses the rest);
# in the JSON schema only, so a refusal keeps check_container_path's message, which names the fix.
ContainerPath = Annotated[str, Field(json_schema_extra={"pattern": "^/"})]

REPLY = {"reply": True}


def is_reply(info: ValidationInfo) -> bool:
    """Is this a document a server sent (``model_validate(..., context=REPLY)``)?

    The SDK reads tasks back with the models that check them on the way in; what
    only a request must satisfy is not asked of a reply.
    """
    return isinstance(info.context, dict) and bool(info.context.get("reply"))


class _Spec(BaseModel):
    # Schemas are built on first use: a worker validates a Task and nothing else.  NaN and
    # Infinity (which Python's JSON reader accepts) are no sizes and cannot be echoed.
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, defer_build=True, allow_inf_nan=False
    )


class Input(_Spec):
    name: str | None = None
    description: str | None = None
    url: str | None = None
    path: ContainerPath
    type: FileType = FileType.FILE
    content: str | None = None
    streamable: bool | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return check_container_path(v, "input path")

    @model_validator(mode="after")
    def _source(self, info: ValidationInfo) -> Input:
        if is_reply(info):
            return self  # the BASIC view leaves content out; the server checked it on the way in
        if self.content is not None:
            if len(self.content.encode()) > MAX_CONTENT_BYTES:
                raise ValueError(
                    f"input {self.path}: content is larger than {MAX_CONTENT_BYTES} bytes; "
                    "put the data in a file and pass its url instead"
                )
            if self.type is FileType.DIRECTORY:
                raise ValueError(f"input {self.path}: content can only fill a FILE input")
        elif not self.url:
            raise ValueError(f"input {self.path}: give either url or content")
        return self

    def source(self) -> tuple[str | None, str | None, FileType]:
        """What lands at ``path``: two inputs with the same source are one input."""
        return (self.url, self.content, self.type)


def distinct_inputs(inputs: list[Input] | None) -> list[Input]:
    """The inputs with identical repeats (same path, same source) left out, in order.

    Workflow engines send one input twice when two links carry it (cwl-tes does for
    CWL scatter steps); it is staged once.  Same path, other source stays a conflict.
    """
    seen: set[tuple[str, tuple[str | None, str | None, FileType]]] = set()
    unique: list[Input] = []
    for inp in inputs or []:
        key = (inp.path, inp.source())
        if key not in seen:
            seen.add(key)
            unique.append(inp)
    return unique


class Output(_Spec):
    name: str | None = None
    description: str | None = None
    url: str
    path: ContainerPath
    path_prefix: str | None = None
    type: FileType = FileType.FILE

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return check_container_path(v, "output path", allow_wildcards=True)

    @model_validator(mode="after")
    def _prefix(self) -> Output:
        if not self.url:
            raise ValueError(f"output {self.path}: url must not be empty")
        if self.path_prefix is not None and self.path_prefix not in ("", "/"):
            prefix = check_container_path(self.path_prefix, "output path_prefix")
            if not (self.path + "/").startswith(prefix.rstrip("/") + "/"):
                raise ValueError(
                    f"output {self.path}: path_prefix {self.path_prefix!r} is not a prefix of it"
                )
        return self


class Executor(_Spec):
    image: Annotated[str, Field(min_length=1)]
    command: Annotated[list[str], Field(min_length=1)]
    workdir: ContainerPath | None = None
    stdin: ContainerPath | None = None
    stdout: ContainerPath | None = None
    stderr: ContainerPath | None = None
    env: dict[str, str] | None = None
    ignore_error: bool | None = None

    @field_validator("workdir", "stdin", "stdout", "stderr")
    @classmethod
    def _paths(cls, v: str | None, info: Any) -> str | None:
        if v is None or v == "":
            return None
        return check_container_path(v, f"executor {info.field_name}")

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if v != v.strip() or any(c.isspace() for c in v) or v.startswith("-"):
            raise ValueError(f"image {v!r} is not a valid image reference")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for key in v or {}:
            if not key or "=" in key or "\x00" in key:
                raise ValueError(f"environment variable name {key!r} is not valid")
        return v


class Resources(_Spec):
    cpu_cores: Annotated[int, Field(ge=1)] | None = None
    preemptible: bool | None = None
    ram_gb: Annotated[float, Field(gt=0)] | None = None
    disk_gb: Annotated[float, Field(gt=0)] | None = None
    zones: list[str] | None = None
    backend_parameters: dict[str, str] | None = None
    backend_parameters_strict: bool | None = None


class ExecutorLog(_Spec):
    start_time: str | None = None
    end_time: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int


class OutputFileLog(_Spec):
    url: str
    path: str
    size_bytes: str


class TaskLog(_Spec):
    logs: list[ExecutorLog] = Field(default_factory=list)
    metadata: dict[str, str] | None = None
    start_time: str | None = None
    end_time: str | None = None
    outputs: list[OutputFileLog] = Field(default_factory=list)
    system_logs: list[str] | None = None


class Task(_Spec):
    id: str | None = None
    state: TaskState | None = None
    name: str | None = None
    description: str | None = None
    inputs: list[Input] | None = None
    outputs: list[Output] | None = None
    resources: Resources | None = None
    executors: Annotated[list[Executor], Field(min_length=1)]
    volumes: list[str] | None = None
    tags: dict[str, str] | None = None
    logs: list[TaskLog] | None = None
    creation_time: str | None = None

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [check_container_path(p, "volume") for p in v]


class TaskView(Task):
    """A task as returned: in the MINIMAL view only ``id`` and ``state`` are present."""

    executors: list[Executor] | None = None  # type: ignore[assignment]


class ErrorResponse(BaseModel):
    """toolship's error body: ``detail`` names the problem and how to fix it."""

    detail: str


class CreateTaskResponse(_Spec):
    id: str


class ListTasksResponse(_Spec):
    tasks: list[TaskView]
    next_page_token: str | None = None


class ServiceType(_Spec):
    group: str
    artifact: str
    version: str


class ServiceOrganization(_Spec):
    name: str
    url: str


class ServiceInfo(_Spec):
    id: str
    name: str
    type: ServiceType
    description: str | None = None
    organization: ServiceOrganization
    contactUrl: str | None = None
    documentationUrl: str | None = None
    createdAt: str | None = None
    updatedAt: str | None = None
    environment: str | None = None
    version: str
    storage: list[str] | None = None
    tesResources_backend_parameters: list[str] | None = None


class LegacyServiceInfo(_Spec):
    """TES 1.0's service-info (``/v1/tasks/service-info``), which TES 1.0 clients read.

    py-tes 0.4 (pinned by Snakemake's and Toil's TES plugins) accepts exactly these
    fields and fails on any other.
    """

    name: str | None = None
    doc: str | None = None
    storage: list[str] | None = None


# --- toolship's own API (/api/v1): batches ------------------------------------


class MapSpec(_Spec):
    """One member per object matching ``over`` (or per ``chunk`` objects)."""

    over: str = Field(description="URL pattern, e.g. s3://bucket/raw/*.segy (any staging scheme)")
    chunk: Annotated[int, Field(ge=1, le=100_000)] = 1
    to: str = Field(
        description="Output prefix: member outputs go to TO/map/ITEM/, reduce to TO/reduce/"
    )
    input_dir: str = "/work/in"
    output_dir: str = "/work/out"


class BatchRequest(_Spec):
    """A sweep (``template`` + ``params``), a map (``template`` + ``map``) or explicit ``tasks``."""

    name: str | None = None
    tasks: list[Task] | None = Field(
        default=None,
        description="Explicit members; backend_parameters.after may name other members as @N",
    )
    template: Task | None = None
    service: BatchService | None = Field(
        default=None,
        description="Instead of template: each member runs this service (sweeps and maps)",
    )
    params: list[dict[str, str | int | float]] | None = Field(
        default=None, description="One row per member; {key} placeholders take the row's values"
    )
    map: MapSpec | None = None
    reduce: Task | None = Field(default=None, description="Runs after every member is COMPLETE")
    max_parallel: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    priority: Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)] | None = None
    timeout: str | None = Field(
        default=None, description="Cancel unfinished members after this long, e.g. 2h"
    )
    tags: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> BatchRequest:
        kinds = [
            k
            for k, present in (
                ("tasks", self.tasks is not None),
                ("params", self.params is not None),
                ("map", self.map is not None),
            )
            if present
        ]
        if len(kinds) != 1:
            raise ValueError("give exactly one of tasks, params (a sweep) or map")
        if self.template is not None and self.service is not None:
            raise ValueError("give a template task or a service, not both")
        if kinds[0] != "tasks" and self.template is None and self.service is None:
            raise ValueError(f"{kinds[0]} needs a template task (or a service)")
        if kinds[0] == "tasks" and (self.template is not None or self.service is not None):
            raise ValueError(
                "template and service are for sweeps and maps; explicit tasks need neither"
            )
        return self


class CreateBatchResponse(_Spec):
    id: str
    task_ids: list[str]


# --- what toolship's own API (/api/v1) answers: the SDK's typed returns ---------


class _Reply(BaseModel):
    # Keys a newer server adds are kept (and printed again by the CLI's --json), not refused.
    model_config = ConfigDict(extra="allow", defer_build=True)


class TaskWait(_Reply):
    """``GET /api/v1/tasks/{id}/wait``: the state when the task ended or the wait ran out."""

    id: str
    state: TaskState
    final: bool


class StagingProgress(_Reply):
    files: int
    bytes: int


class SlurmJob(_Reply):
    """The Slurm job that runs a task's attempt, as the Slurm backend last saw it."""

    job_id: str | None = None
    state: str | None = None
    nodes: str | None = None


class RankEnd(_Reply):
    """How one rank of a multi-node task's executor ended (the latest attempt's)."""

    executor: int
    rank: int
    node: str | None = None  # the host it ran on (Slurm's node name)
    exit_code: int | None = None  # None: it left no exit code (killed, or never started)


class TaskDetails(_Reply):
    """``GET /api/v1/tasks/{id}``: the FULL TES task plus what only toolship knows."""

    task: TaskView
    runtime: str | None = None
    # The resources as toolship runs them: the task's own, plus what the server decided
    # for what it left out (cores, memory limit, runtime); not in the TES task above.
    resources: Resources | None = None
    isolated: bool = True
    attempt_dir: str | None = None
    executor: int | None = None
    phase: str | None = None
    running_executor_start: str | None = None
    staged: StagingProgress | None = None  # known to the replica that runs it
    replica: str | None = None  # the server replica that runs it (docs/deploy.md)
    slurm: SlurmJob | None = None
    # Multi-node tasks: every rank of each executor that ended, with its node and exit code.
    ranks: list[RankEnd] = Field(default_factory=list)


class BatchMap(_Reply):
    over: str
    chunk: int
    to: str
    objects: int | None = None


class BatchInfo(_Reply):
    """``GET /api/v1/batches/{id}``: size, one state for the whole batch, counts by state."""

    id: str
    name: str | None = None
    kind: str
    creation_time: str | None = None
    size: int
    state: TaskState
    counts: dict[TaskState, int] = Field(default_factory=dict)
    max_parallel: int | None = None
    priority: int | None = None
    timeout: str | None = None
    map: BatchMap | None = None

    @property
    def active(self) -> bool:
        """Is any member still queued, initializing or running?"""
        return any(self.counts.get(s) for s in ACTIVE_STATES)


class BatchList(_Reply):
    batches: list[BatchInfo]


class CancelBatchResponse(_Reply):
    id: str
    canceled: int


class MemberReport(_Reply):
    """One member's usage: times in seconds, memory in bytes, cost in the report's currency."""

    id: str
    name: str | None = None
    state: TaskState
    params: dict[str, str] = Field(default_factory=dict)
    cpus: int
    memory_gb: float
    gpus: int
    attempts: int
    wall_seconds: float
    run_seconds: float
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
    # GPUs: devices x executors' time (what is priced), then NVML's samples when taken.
    gpu_seconds: float | None = None
    gpu_busy_seconds: float | None = None
    gpu_memory_peak_bytes: int | None = None
    cost: float
    start: str | None = None
    end: str | None = None


class ReportTotals(_Reply):
    members: int
    counts: dict[TaskState, int] = Field(default_factory=dict)
    attempts: int
    wall_seconds: float
    run_seconds: float
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
    gpu_seconds: float | None = None
    gpu_busy_seconds: float | None = None
    gpu_memory_peak_bytes: int | None = None
    cost: float
    turnaround_seconds: float | None = None


class ScalingPoint(_Reply):
    n: int
    members: int
    run_seconds: float
    speedup: float
    efficiency: float


class Scaling(_Reply):
    """How a sweep over ``parameter`` (cpu, cpus or nodes) scaled."""

    parameter: str
    points: list[ScalingPoint]


class Prices(_Reply):
    core_hour: float
    gb_hour: float
    gpu_hour: float
    currency: str


class BatchReport(_Reply):
    """``GET /api/v1/batches/{id}/report``: per member usage and cost, totals, scaling."""

    batch: BatchInfo
    currency: str
    prices: Prices
    totals: ReportTotals
    members: list[MemberReport]
    scaling: Scaling | None = None


# --- users, tokens and who did what (/api/v1/users, /api/v1/events, /api/v1/me) ---------


class NewUser(_Spec):
    """``POST /api/v1/users``: a user and its role and groups (the first group is the one
    its tasks count against)."""

    name: str
    role: str = "user"
    groups: list[str] = Field(default_factory=list)


class TokenInfo(_Reply):
    """A user's token as the server keeps it: never the token itself."""

    id: str
    user: str
    created: str
    revoked: str | None = None
    last_used: str | None = None


class IssuedToken(_Reply):
    """A new token: ``token`` is shown this once; the server keeps only its sha256."""

    id: str
    user: str
    token: str


class UserInfo(_Reply):
    name: str
    role: str
    groups: list[str] = Field(default_factory=list)
    disabled: bool = False
    created: str
    tokens: list[TokenInfo] = Field(default_factory=list)


class UserList(_Reply):
    users: list[UserInfo]


class CreatedUser(_Reply):
    user: UserInfo
    token: IssuedToken


class Whoami(_Reply):
    """``GET /api/v1/me``: who the server takes the caller for, and how it knows."""

    name: str
    role: str
    groups: list[str] = Field(default_factory=list)
    via: str


class EventInfo(_Reply):
    """One line of who did what: ``action`` on ``target`` by ``actor`` from ``address``."""

    seq: int
    time: str
    actor: str
    action: str
    target: str = ""
    address: str = ""
    detail: str = ""


class EventList(_Reply):
    events: list[EventInfo]
    next_page_token: str | None = None


class QuotaUse(_Reply):
    running_cpus: float
    running_memory_gb: float
    running_gpus: int
    queued_tasks: int


class QuotaLimits(_Reply):
    """One user's or group's limits (None: no limit) and what counts against them now."""

    name: str
    setting: str  # where the limits come from: access.user_quotas.NAME, access.default_quota …
    running_cpus: int | None = None
    running_memory_gb: float | None = None
    running_gpus: int | None = None
    queued_tasks: int | None = None
    batch_size: int | None = None
    use: QuotaUse


class FairShareStanding(_Reply):
    on: bool
    usage_core_seconds: float  # decayed, with what running attempts have held so far
    weight: float
    half_life_hours: float


class QuotaReport(_Reply):
    """``GET /api/v1/quota``: a user's limits and use, its group's, its fair-share standing."""

    user: QuotaLimits
    group: QuotaLimits | None = None
    fair_share: FairShareStanding
