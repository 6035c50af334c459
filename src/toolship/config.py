"""One typed settings tree, read from defaults, a TOML file and ``TOOLSHIP_*``.

Priority, highest first: explicit overrides (CLI flags), environment variables
(``TOOLSHIP_LOCAL__CPUS=4`` — ``__`` separates sections), the TOML file given
with ``--config`` or ``TOOLSHIP_CONFIG``, then the defaults below.  The tree
is validated once at start-up and passed down as an object; nothing reads the
environment later.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path
from typing import Any, Literal, TypedDict
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from toolship.errors import ConfigError
from toolship.storage.settings import S3Settings, StorageSettings

__all__ = [
    "DatabaseSettings",
    "ImageSettings",
    "LimitSettings",
    "LocalSettings",
    "PolicySettings",
    "PriceSettings",
    "S3Settings",
    "ServerSettings",
    "ServerState",
    "Settings",
    "SigningKey",
    "SlurmPartition",
    "SlurmSettings",
    "StorageSettings",
    "default_home",
    "load_settings",
    "state_file",
    "token_file",
]

RuntimeName = Literal["podman", "docker", "process"]


def default_home() -> Path:
    """Where the embedded server keeps its database, logs and work directories."""
    explicit = os.environ.get("TOOLSHIP_HOME")
    if explicit:
        return Path(explicit).expanduser().absolute()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "toolship"


class ServerState(TypedDict):
    """What ``server.json`` says about the running embedded server."""

    url: str
    pid: int
    token_file: str


def state_file(home: Path) -> Path:
    """Where the embedded server of ``home`` says where it listens (a :class:`ServerState`)."""
    return home / "server.json"


def token_file(home: Path) -> Path:
    """The embedded server's bearer token (mode 0600)."""
    return home / "token"


def _total_memory_gb() -> float:
    pages = os.sysconf("SC_PHYS_PAGES")
    size = os.sysconf("SC_PAGE_SIZE")
    return round(pages * size / 1024**3, 2)


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Bearer tokens accepted by the API.  None and an empty list both mean "no auth".
    token_file: Path | None = None
    # Serve without tokens on an address other hosts can reach: anyone who can connect may
    # then run tasks.  Off: `toolship serve` refuses to start that way.
    allow_unauthenticated: bool = False
    # HTTPS: the certificate chain and its key (PEM); both or neither.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # This server's name among the replicas that share one database (docs/deploy.md):
    # unique per replica, and the same again when it restarts.  Empty: the host's name.
    replica: str = Field(default="", pattern=r"^[A-Za-z0-9._-]{0,64}$")
    # How often a replica says it lives, and how long after its last heartbeat another
    # replica adopts its unfinished tasks (docs/deploy.md, "Several replicas").
    heartbeat_s: float = Field(default=5.0, gt=0)
    adopt_after_s: float = Field(default=30.0, gt=0)
    # How the other replicas reach this one: a Slurm job's worker that reports to another
    # replica is forwarded here when this one runs its attempt.  Empty: the address
    # `toolship serve` listens on (the host's name when that is every address).
    advertise_url: str = ""
    service_name: str = "toolship"
    organization: str = "toolship"
    organization_url: str = "https://github.com/toolship"

    @field_validator("advertise_url")
    @classmethod
    def _a_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError(
                f"server.advertise_url {value!r} is not a URL other replicas can reach: "
                "give http(s)://HOST:PORT of this replica, or leave it empty for the address "
                "it listens on"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _adopt_after_beats(self) -> ServerSettings:
        if self.adopt_after_s < 3 * self.heartbeat_s:
            raise ValueError(
                f"server.adopt_after_s ({self.adopt_after_s:g}) must be at least three "
                f"server.heartbeat_s ({self.heartbeat_s:g}): a replica a heartbeat late "
                "would be adopted while it still runs its tasks. Raise adopt_after_s or "
                "lower heartbeat_s"
            )
        return self


class DatabaseSettings(BaseModel):
    # SQLAlchemy URL; empty means SQLite in the home directory.
    url: str = ""
    # SQLite: how long a write waits for a lock another process holds before the request
    # fails with a 503 that says so (PostgreSQL waits as its own settings say).
    busy_timeout_seconds: float = Field(default=10.0, gt=0)


class GpuDevice(BaseModel):
    """A GPU listed in the settings (local.gpu_devices) rather than found."""

    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=0)  # the host's index (nvidia-smi's; /dev/nvidia{index})
    uuid: str = ""  # "GPU-…": what CUDA_VISIBLE_DEVICES names it by when given
    name: str = ""
    memory_mib: int = Field(default=0, ge=0)


class LocalSettings(BaseModel):
    """The local executor: what this machine offers and how containers run."""

    runtime: RuntimeName = "podman"
    # Capacity the scheduler hands out; defaults to the whole machine.
    cpus: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    memory_gb: float = Field(default_factory=_total_memory_gb, gt=0)
    # GPUs tasks get (README, "GPUs"): None, every device found at start (NVML, else
    # nvidia-smi); N, at most N of them (0: none; more than found: the rest are counted
    # devices without a UUID, a warning).  gpu_devices lists them instead of finding them.
    gpus: int | None = Field(default=None, ge=0)
    gpu_devices: list[GpuDevice] = Field(default_factory=list)
    gpu_share: int = Field(default=1, ge=1)  # tasks one device runs at once
    gpu_sample_seconds: float = Field(default=0.5, ge=0)  # NVML sampling (0: off)
    # Cores accounted for a task that does not say.
    default_cpus: int = Field(default=1, ge=1)
    # Memory reserved for, and enforced on, a task that does not say (resources.ram_gb):
    # kept in the server's record of the task.  0: such tasks are neither accounted nor limited.
    default_memory_gb: float = Field(default=2.0, ge=0)
    pids_limit: int = Field(default=4096, ge=16)
    # Host directories mounted read-write at the same path in every container, like the
    # shared file system of a cluster (workflow engines such as Snakemake expect one).
    # Empty by default: a task then sees only its own inputs, outputs and volumes.
    # Tasks use them as local.task_user: give them to that user, or run tasks as theirs.
    shared_dirs: list[Path] = Field(default_factory=list)
    # Folders in shared_dirs where an input a task names is mounted read-write, so the
    # task changes the original in place (Toil's TES batch system passes its file job
    # store to every task as an input at its own path, and the jobs write into it).
    # Tasks can write the shared dirs anyway: this changes how a named input is mounted,
    # never what a task can reach.  Empty by default: every input is read-only.
    writable_shared_dirs: list[Path] = Field(default_factory=list)
    # How much of each stream is kept in the task record (full logs stay on disk).
    log_tail_bytes: int = Field(default=64 * 1024, ge=0)
    # Seconds a cancelled container gets between SIGTERM and SIGKILL.
    stop_grace_seconds: int = Field(default=1, ge=0)
    # Measure each attempt's CPU seconds and peak memory (root podman with cgroupfs).
    accounting: bool = True
    # Who tasks run as when the server runs as root, "UID:GID" (the container's user, and
    # the process runtime's).  "0:0" runs them as root: the operator's explicit choice.
    # A server that is not root runs its tasks as itself.
    task_user: str = "65534:65534"
    # Host ids for the other users of a task's container, "FIRST:COUNT": on a root server
    # with podman a task is root of a user namespace whose root is task_user on the host
    # and whose users 1 … COUNT-1 are FIRST … (ids no one on the host may own).  Root in
    # the container then has its usual file capabilities over its own files.  "" (or
    # task_user "0:0"): no namespace, tasks run as task_user without capabilities.
    task_subids: str = "1000000000:65536"
    # Who the files and folders delivered to file:// outputs belong to, "UID:GID";
    # empty: the server's own user.
    output_owner: str = ""

    @field_validator("writable_shared_dirs")
    @classmethod
    def _resolved(cls, v: list[Path]) -> list[Path]:
        for d in v:
            if not d.is_absolute():
                raise ValueError(f"give absolute paths (got {str(d)!r})")
        return [d.resolve() for d in v]

    @model_validator(mode="after")
    def _writable_inside_shared(self) -> LocalSettings:
        shared = [d.resolve() for d in self.shared_dirs]
        for d in self.writable_shared_dirs:
            if not any(d.is_relative_to(s) for s in shared):
                raise ValueError(
                    f"local.writable_shared_dirs: {d} is not inside any of local.shared_dirs "
                    f"({', '.join(map(str, shared)) or 'none'}): tasks may write inputs in "
                    "place only where they can write anyway; add it (or a folder above it) "
                    "to local.shared_dirs, or remove it"
                )
        return self

    @model_validator(mode="after")
    def _gpu_devices_distinct(self) -> LocalSettings:
        for what in ("index", "uuid"):
            seen = [getattr(d, what) for d in self.gpu_devices if getattr(d, what) != ""]
            twice = sorted({str(v) for v in seen if seen.count(v) > 1})
            if twice:
                raise ValueError(
                    f"local.gpu_devices: {what} {', '.join(twice)} is listed more than once; "
                    f"each device has its own {what}: list every device once"
                )
        return self

    @model_validator(mode="after")
    def _subids_apart_from_task_user(self) -> LocalSettings:
        if not self.task_subids:
            return self
        first, count = _ids(self.task_subids)
        # The namespace maps container users 1 … count-1 to first … first+count-2.
        taken = [i for i in _ids(self.task_user) if first <= i < first + count - 1]
        if taken:
            raise ValueError(
                f"local.task_subids = {self.task_subids!r} includes {taken[0]}, which "
                f"local.task_user = {self.task_user!r} uses for the task's root: the ranges "
                "must not overlap; give host ids no one owns, e.g. 1000000000:65536"
            )
        return self

    @field_validator("task_user", "output_owner")
    @classmethod
    def _uid_gid(cls, v: str, info: ValidationInfo) -> str:
        if (v or info.field_name == "task_user") and not re.fullmatch(r"\d+:\d+", v):
            raise ValueError(f"give numeric UID:GID, e.g. 65534:65534 (got {v!r})")
        return v

    @field_validator("task_subids")
    @classmethod
    def _subids(cls, v: str) -> str:
        if not v:
            return v
        match = re.fullmatch(r"(\d+):(\d+)", v)
        if not match or int(match[2]) < 1 or int(match[1]) + int(match[2]) > 2**32 - 1:
            raise ValueError(
                f'give FIRST:COUNT, host ids no one owns, e.g. 1000000000:65536, or "" '
                f"for no user namespace (got {v!r})"
            )
        return v


class SlurmPartition(BaseModel):
    """What one partition offers, per node (declared, or read from ``sinfo`` when none are)."""

    name: str
    nodes: int = Field(default=1, ge=1)
    cpus_per_node: int = Field(default=1, ge=1)
    memory_gb_per_node: float = Field(default=1.0, gt=0)
    gpus_per_node: int = Field(default=0, ge=0)


class SlurmSettings(BaseModel):
    """The Slurm backend: each attempt is one batch job running ``toolship worker``."""

    # What the cluster offers; empty = ask `sinfo` at start-up.  Tasks that no partition
    # can hold (GPUs on a GPU-less cluster, more nodes than a partition has) get a 400.
    partitions: list[SlurmPartition] = Field(default_factory=list)
    default_partition: str = ""  # empty = the cluster's default
    # A directory every compute node sees at the same path: task work directories live
    # here (inputs are staged once for all nodes).  Empty = the server's home/tasks.
    shared_workdir: Path | None = None
    # How compute nodes reach the server: with several replicas, the load balancer's URL
    # (any replica forwards a worker to the one running its attempt).  Empty: this
    # replica's own address (server.advertise_url).
    server_url: str = ""
    # The command that starts a worker on a node (toolship must be installed there).
    # `python -m toolship.worker` is `toolship worker` without loading the CLI.
    worker_command: list[str] = Field(
        default_factory=lambda: [sys.executable, "-m", "toolship.worker"]
    )
    # Container runtime on the nodes (podman; apptainer can follow as another runtime).
    runtime: RuntimeName = "podman"
    # Seconds between the reconcile ticks (one `squeue` call each, for all jobs).
    poll_seconds: float = Field(default=2.0, gt=0)
    # sbatch calls in flight at once, and tries when slurmctld is busy.
    submit_concurrency: int = Field(default=4, ge=1, le=64)
    submit_attempts: int = Field(default=6, ge=1, le=50)
    # Slack added to a task's timeout for the job's --time (staging in and out).
    time_margin_seconds: int = Field(default=600, ge=0)
    # The server secret that per-task worker tokens are derived from (HMAC of the task id);
    # empty = home/worker.secret, created on first start (mode 0600).
    secret_file: Path | None = None
    # Extra lines for every batch script, e.g. ["module load podman"].
    prologue: list[str] = Field(default_factory=list)


class OidcSettings(BaseModel):
    """Bearer JWTs from an OpenID Connect issuer (README, "Many users")."""

    model_config = ConfigDict(extra="forbid")
    # The issuer (its iss claim); "" turns OIDC off.  Its JWKS comes from jwks_url or, when
    # that is empty, from the issuer's /.well-known/openid-configuration.
    issuer: str = ""
    audience: str = ""  # the aud a token must carry (e.g. the client id)
    jwks_url: str = ""
    # Asymmetric algorithms only: "none" and HMAC (HS256…) are always refused.
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "PS256", "EdDSA"])
    leeway_seconds: int = Field(default=60, ge=0, le=600)  # clock skew allowed on exp/nbf/iat
    jwks_cache_seconds: int = Field(default=3600, ge=0)  # refreshed early on an unknown kid
    user_claim: str = "preferred_username"  # the user name (falls back to "sub")
    groups_claim: str = "groups"
    # Groups mapped to roles (the highest wins); anyone else gets default_role.
    admin_groups: list[str] = Field(default_factory=list)
    maintainer_groups: list[str] = Field(default_factory=list)
    user_groups: list[str] = Field(default_factory=list)
    viewer_groups: list[str] = Field(default_factory=list)
    default_role: Literal["viewer", "user", "maintainer", "admin", "none"] = "user"
    # For the web UI's login (authorisation code + PKCE).
    client_id: str = ""


class Quota(BaseModel):
    """Limits of one user or group (None: no limit)."""

    model_config = ConfigDict(extra="forbid")
    running_cpus: int | None = Field(default=None, ge=0)  # beyond: tasks wait
    running_memory_gb: float | None = Field(default=None, ge=0)
    running_gpus: int | None = Field(default=None, ge=0)
    queued_tasks: int | None = Field(default=None, ge=0)  # beyond: 429
    batch_size: int | None = Field(default=None, ge=1)  # beyond: 400


class AccessSettings(BaseModel):
    """Who sees and does what on a server with users (README, "Many users")."""

    model_config = ConfigDict(extra="forbid")
    # all: everyone sees everything; owner: each user their own; owner-or-admin: and
    # admins everything.
    mode: Literal["all", "owner", "owner-or-admin"] = "owner-or-admin"
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    # Quotas per user and per group by name; default applies to users not named.
    user_quotas: dict[str, Quota] = Field(default_factory=dict)
    group_quotas: dict[str, Quota] = Field(default_factory=dict)
    default_quota: Quota = Field(default_factory=Quota)
    # Fair share among users (then groups) in the local scheduler: usage in core-seconds
    # decayed with this half-life; weights per user and group (default 1).
    fair_share: bool = True
    fair_share_half_life_hours: float = Field(default=168.0, gt=0)
    user_weights: dict[str, float] = Field(default_factory=dict)
    group_weights: dict[str, float] = Field(default_factory=dict)
    # Slurm: each user's jobs are submitted with --account (this map; unset: no --account).
    slurm_accounts: dict[str, str] = Field(default_factory=dict)
    # Requests per second each token may make (0: unlimited), and the burst above it.
    rate_limit_per_second: float = Field(default=0.0, ge=0)
    rate_limit_burst: int = Field(default=100, ge=1)
    # Who may read /metrics (docs/deploy.md, "Metrics"): admin (the token file's tokens,
    # admin users), viewer (any valid token: give Prometheus a viewer's), open (no token).
    metrics: Literal["admin", "viewer", "open"] = "admin"


class PriceSettings(BaseModel):
    """What resources cost, for per-task and per-batch cost in reports (0: not priced)."""

    core_hour: float = Field(default=0.0, ge=0)  # per reserved CPU core and hour
    gb_hour: float = Field(default=0.0, ge=0)  # per reserved GiB of memory and hour
    gpu_hour: float = Field(default=0.0, ge=0)
    currency: str = "EUR"


class PolicySettings(BaseModel):
    """What clients may ask for.  None: the default of the kind of server (see policy.py).

    A shared server (`toolship serve`) serves clients other than its operator; the
    embedded server (started by the CLI for its user) serves its operator only.
    """

    # Runtimes a task may name in backend_parameters.runtime (the server's own default
    # runtime is always allowed).  Shared: podman, docker.  Embedded: podman, docker, process.
    runtimes: list[RuntimeName] | None = None
    # Multi-node tasks on the Slurm backend run with the host's network (their ranks talk
    # across nodes).  Shared: refused.  Embedded: allowed.
    host_network: bool | None = None
    # Tasks with backend_parameters.nodes above 1.  Allowed on both by default.
    multi_node: bool | None = None
    # Image transports allowed before a reference (oci-archive, docker-archive, oci, dir,
    # containers-storage, docker-daemon, docker, ...): none on either kind of server, so
    # only plain [registry/]name[:tag][@digest] references reach the runtime.
    image_transports: list[str] = Field(default_factory=list)
    # AWS profiles (of the server's user) a task may name with backend_parameters.s3_profile;
    # "*" allows any.  Shared: none.  Embedded: any.
    s3_profiles: list[str] | None = None


class LimitSettings(BaseModel):
    """What one request may cost: each limit refused with a 400 that names it."""

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_executors: int = Field(default=100, ge=1)
    max_inputs: int = Field(default=10_000, ge=0)
    max_outputs: int = Field(default=10_000, ge=0)
    max_volumes: int = Field(default=256, ge=0)
    max_tags: int = Field(default=256, ge=0)
    max_env: int = Field(default=1024, ge=0)  # entries per executor
    max_command_words: int = Field(default=10_000, ge=1)  # per executor
    max_name_length: int = Field(default=1024, ge=1)  # task, input, output and batch names
    max_tag_key_length: int = Field(default=1024, ge=1)
    max_tag_value_length: int = Field(default=4096, ge=1)
    max_description_length: int = Field(default=64 * 1024, ge=1)
    # tag_key parameters of one ListTasks call (each is one more condition in its query).
    max_tag_filters: int = Field(default=64, ge=1, le=500)


class SigningKey(BaseModel):
    """A key that must have signed the images of one scope (see ``ImageSettings.signed_by``)."""

    # The registry ("127.0.0.1:5055") or registry/path ("registry.example.org/team") whose
    # images this key must have signed: the longest scope that contains an image applies.
    scope: str = Field(min_length=1)
    # The public key: an armored or binary GPG key file (signatures made with
    # `skopeo copy --sign-by FINGERPRINT`), or a sigstore public key (PEM) file.
    gpg_key: Path | None = None
    sigstore_key: Path | None = None

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str) -> str:
        if "://" in v or "@" in v or v != v.strip() or v.startswith("/"):
            raise ValueError(
                f"give a registry or registry/path such as 127.0.0.1:5055/team (got {v!r})"
            )
        return v.rstrip("/")

    @model_validator(mode="after")
    def _one_key(self) -> SigningKey:
        if (self.gpg_key is None) == (self.sigstore_key is None):
            raise ValueError(
                f"signing key for {self.scope!r}: give exactly one of gpg_key (a GPG public "
                "key file) and sigstore_key (a sigstore public key file)"
            )
        return self


class ImageSettings(BaseModel):
    """Which images tasks may run, and where the services catalog keeps what it builds."""

    # "any": whatever a task names (the embedded default); "digest": an image is resolved
    # to its manifest digest when the task is created and that digest runs; "catalog":
    # only images of catalogued service versions run.
    trust: Literal["any", "digest", "catalog"] = "any"
    # Registries (hosts, or host/path prefixes) images may come from; empty: any.
    # Advertised in the TRS service-info.
    approved_registries: list[str] = Field(default_factory=list)
    # Where `service build` pushes what it builds ("127.0.0.1:5055/toolship"); empty: the
    # image stays in this host's storage as localhost/NAME.
    registry: str = ""
    # Keys that must have signed an image, verified offline by containers' signature
    # policy when it is registered or run; empty: no signature is required.
    signed_by: list[SigningKey] = Field(default_factory=list)
    # The registries.d folder that says where each registry's signatures are (lookaside);
    # None: the system's (/etc/containers/registries.d, or the user's).
    registries_d: Path | None = None
    # What one `service build` may use: its RUN steps run as a task runs (local.task_user
    # and local.task_subids, local.pids_limit) within this memory and these CPUs, and the
    # whole build is stopped after build_timeout_seconds.  At most builds_at_once run;
    # the others wait for their turn.
    build_memory_gb: float = Field(default=4.0, gt=0)
    build_cpus: float = Field(default=2.0, gt=0)
    build_timeout_seconds: int = Field(default=3600, ge=1)
    builds_at_once: int = Field(default=2, ge=1)
    # An SBOM is made once per image digest (syft, offline; docs/provenance.md): on request,
    # and unless this is false also when a service version is registered and when an attempt
    # first runs a digest (in the background, never holding a task).  A scan that runs
    # longer than sbom_timeout_seconds is stopped and recorded as failed.
    sboms_on_use: bool = True
    sbom_timeout_seconds: int = Field(default=600, ge=1)

    @property
    def pull_from(self) -> list[str]:
        """Registries whose images pinned by digest a node that lacks them pulls: the
        approved ones and the catalog's own (a tag, or another registry, never)."""
        return [*self.approved_registries, *([self.registry] if self.registry else [])]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TOOLSHIP_", env_nested_delimiter="__", extra="forbid"
    )

    home: Path = Field(default_factory=default_home)
    backend: Literal["local", "slurm"] = "local"
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    prices: PriceSettings = Field(default_factory=PriceSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)

    # The config file these settings were read from (one of toolship's own files).
    _config_file: Path | None = PrivateAttr(default=None)

    @property
    def task_user(self) -> tuple[int, int]:
        """The uid:gid tasks run as: local.task_user on a server running as root."""
        if os.geteuid() != 0:
            return os.getuid(), os.getgid()
        return _ids(self.local.task_user)

    @property
    def task_subids(self) -> tuple[int, int] | None:
        """The host ids a task's other container users map to (None: no user namespace)."""
        return _ids(self.local.task_subids) if self.local.task_subids else None

    @property
    def output_owner(self) -> tuple[int, int] | None:
        """Who delivered outputs belong to (None: the server's own user)."""
        return _ids(self.local.output_owner) if self.local.output_owner else None

    @property
    def own_files(self) -> dict[Path, str]:
        """toolship's own files, out of every task's reach even inside an allowed root."""
        own: dict[Path, str] = {
            self.home: "toolship's own home",
            self.work_dir: "toolship's work directory (other tasks' files)",
        }
        if self.database_url.startswith("sqlite:///"):
            own[Path(self.database_url.removeprefix("sqlite:///"))] = "toolship's database"
        for path, what in (
            (self.server.token_file, "toolship's token file"),
            (self.slurm.secret_file, "toolship's worker secret"),
            (self._config_file, "toolship's config file"),
        ):
            if path is not None:
                own[path] = what
        return {p.expanduser().absolute(): what for p, what in own.items()}

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.home / 'toolship.db'}"

    @property
    def replica_name(self) -> str:
        """This server's name among replicas (``server.replica``, else the host's name)."""
        return self.server.replica or socket.gethostname()

    @property
    def default_runtime(self) -> str:
        """The runtime of tasks that do not name one: the backend's."""
        return self.slurm.runtime if self.backend == "slurm" else self.local.runtime

    @property
    def work_dir(self) -> Path:
        if self.backend == "slurm" and self.slurm.shared_workdir is not None:
            return self.slurm.shared_workdir
        return self.home / "tasks"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings tree, naming the offending key when it is invalid."""
    path = config_file or (Path(p) if (p := os.environ.get("TOOLSHIP_CONFIG")) else None)
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")

    class _Sourced(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    try:
        loaded = _Sourced(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings ({problems})") from exc
    except ValueError as exc:  # TOML syntax errors
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    settings = Settings.model_validate(loaded.model_dump())
    settings._config_file = path.absolute() if path is not None else None
    return settings


def _ids(text: str) -> tuple[int, int]:
    uid, gid = text.split(":")
    return int(uid), int(gid)
