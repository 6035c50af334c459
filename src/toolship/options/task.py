"""What a task asks of the executor, read from its TES resources — pure.

toolship's own knobs travel as ``resources.backend_parameters`` (keys are
case-insensitive, as TES says) so that TES responses stay spec-shaped.  The
keys are advertised in service-info.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from toolship.errors import InvalidRequest
from toolship.models import Resources
from toolship.options.retry import RetryPolicy, parse_retry
from toolship.runtime import known_runtimes
from toolship.units import parse_duration

if TYPE_CHECKING:  # the compute-node worker reads options without loading the settings
    from toolship.config import Settings

__all__ = [
    "BACKEND_PARAMETERS",
    "SECRET_PARAMETERS",
    "SLURM_PARAMETERS",
    "OptionDefaults",
    "TaskOptions",
    "node_count",
    "read_options",
]

BACKEND_PARAMETERS: dict[str, str] = {
    "network": "true/false: give the container a network (default false)",
    "timeout": "wall-clock limit for the executors, e.g. 90s, 30m, 2h",
    "runtime": "podman, docker or process (process runs on the host, unisolated)",
    "entrypoint": (
        "image (default): the image's ENTRYPOINT, if it has one, runs with the command as its "
        "arguments, as `podman run IMAGE COMMAND` does; command: the command alone"
    ),
    "gpus": "number of GPUs",
    "priority": "integer; higher starts first (default 0)",
    "nodes": "number of nodes, one rank each (default 1); every rank runs each executor",
    "mpi": (
        "launcher: rank 0 runs the command (mpirun --hostfile $TOOLSHIP_HOSTFILE …) and the "
        "other ranks run the MPI processes its mpirun starts on their nodes (Open MPI 4; needs "
        "python3 in the image; with nodes = 1 mpirun starts them itself)"
    ),
    "partition": "Slurm partition (Slurm backend only; default: the server's)",
    "account": "Slurm account to charge (Slurm backend only)",
    "qos": "Slurm quality of service (Slurm backend only)",
    "constraint": "Slurm node features, e.g. 'avx512&ib' (Slurm backend only)",
    "writable_inputs": "true: copy local inputs instead of mounting them read-only",
    "retries": "how many more attempts a failed task gets (default 0)",
    "retry_on": "what is retried: system-error (the default), oom, exit:CODE[,CODE...]",
    "after": "comma-separated task ids this task waits for (each must end COMPLETE)",
    "cache": (
        "true: answer from an earlier COMPLETE task with the same exact key (image digests, "
        "commands, environment, input bytes), and store this one's key when it completes"
    ),
    "s3_profile": "named AWS profile (of the server's user) for s3:// URLs",
    "s3_access_key_id": "per-task S3 credentials (kept apart, never echoed, wiped at the end)",
    "s3_secret_access_key": "per-task S3 credentials",
    "s3_session_token": "per-task S3 credentials",
    "webdav_username": "per-task WebDAV credentials (kept apart, never echoed)",
    "webdav_password": "per-task WebDAV credentials",
    "inputs_sha256": (
        'JSON object {"/container/path": "sha256 hex"}: every staged input file must have '
        "these bytes, checked before any executor runs (what `toolship rerun` sets)"
    ),
}
# Parameters that are credentials: never stored with the task, never shown.
SECRET_PARAMETERS = frozenset(
    {
        "s3_access_key_id",
        "s3_secret_access_key",
        "s3_session_token",
        "webdav_username",
        "webdav_password",
    }
)

# Placement parameters only a cluster scheduler can honour.
SLURM_PARAMETERS = ("partition", "account", "qos", "constraint")

_SLURM_VALUE = re.compile(r"[A-Za-z0-9_.,&|:\[\]*-]{1,200}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True, slots=True)
class TaskOptions:
    cpus: int
    memory_gb: float
    memory_limited: bool
    disk_gb: float | None
    gpus: int
    network: bool
    timeout: float | None
    runtime: str
    priority: int
    # backend_parameters as stored and echoed: only known keys, lower-cased, no credentials.
    parameters: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    writable_inputs: bool = False
    credentials: dict[str, str] = field(default_factory=dict)
    nodes: int = 1  # ranks, one per node; each runs every executor
    mpi_launcher: bool = False  # mpi=launcher: rank 0's mpirun starts processes in every rank
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    after: tuple[str, ...] = ()
    keep_entrypoint: bool = True  # the image's ENTRYPOINT runs, with the command as arguments
    cache: bool = False  # answer from (and feed) the result cache
    # Container path -> sha256 hex each staged input file must have (a rerun's check).
    inputs_sha256: dict[str, str] = field(default_factory=dict)

    def pinned(self) -> OptionDefaults:
        """The defaults that read these options back from the same resources.

        What the server decided for what the task left out (runtime, cores, memory),
        kept in its own record: a restart, a retry or a new default of the server's
        runs the task as it was accepted, and the TES task stays as its client sent it.
        """
        return OptionDefaults(
            runtime=self.runtime,
            cpus=self.cpus,
            memory_gb=self.memory_gb,
            memory_limited=self.memory_limited,
        )


@dataclass(frozen=True, slots=True)
class OptionDefaults:
    """What a task that does not say gets: the one place settings become task defaults.

    A task's own copy (:meth:`TaskOptions.pinned`) is kept in toolship's record of it,
    apart from the TES task its client reads back.
    """

    runtime: str
    cpus: int
    memory_gb: float
    # A task without resources.ram_gb is limited to memory_gb (not only accounted for it).
    memory_limited: bool = False
    # The image each executor runs, pinned by digest when the server's images.trust
    # resolved them at creation (empty: the images the task names).
    images: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> OptionDefaults:
        local = settings.local
        limit = min(local.default_memory_gb, local.memory_gb)
        # On this machine a task that does not say gets the default as its limit,
        # reserved as much as it is enforced.
        limited = settings.backend == "local" and limit > 0
        return cls(
            runtime=settings.default_runtime,
            cpus=local.default_cpus,
            memory_gb=limit if limited else local.default_memory_gb,
            memory_limited=limited,
        )


def _int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest(
            f"resources.backend_parameters.{key}={value!r} must be an integer"
        ) from None


def node_count(backend_parameters: Mapping[str, str] | None) -> int | None:
    """The nodes a task's backend parameters ask for (keys in any case, as read here);
    None when they do not say."""
    asked = [v for k, v in (backend_parameters or {}).items() if k.lower() == "nodes"]
    return _int("nodes", asked[-1]) if asked else None


def read_options(resources: Resources | None, defaults: OptionDefaults) -> TaskOptions:
    res = resources or Resources()
    params: dict[str, str] = {}
    warnings: list[str] = []
    for raw_key, value in (res.backend_parameters or {}).items():
        key = raw_key.lower()
        if key in BACKEND_PARAMETERS:
            params[key] = value
        elif res.backend_parameters_strict:
            raise InvalidRequest(
                f"resources.backend_parameters: key {raw_key!r} is not supported and "
                f"backend_parameters_strict is true; supported keys: "
                f"{', '.join(sorted(BACKEND_PARAMETERS))}"
            )
        else:
            warnings.append(f"backend parameter {raw_key!r} is not supported and was ignored")

    credentials = {k: v for k, v in params.items() if k.startswith(("s3_", "webdav_"))}
    params = {k: v for k, v in params.items() if k not in SECRET_PARAMETERS}
    network = _flag(params, "network")
    writable_inputs = _flag(params, "writable_inputs")
    timeout = None
    if "timeout" in params:
        try:
            timeout = parse_duration(params["timeout"])
        except ValueError as exc:
            raise InvalidRequest(f"resources.backend_parameters.timeout: {exc}") from None
    runtime = params.get("runtime", defaults.runtime).lower()
    if runtime not in known_runtimes():
        raise InvalidRequest(
            f"resources.backend_parameters.runtime={runtime!r} is unknown; "
            f"use one of {', '.join(known_runtimes())}"
        )
    gpus = _int("gpus", params["gpus"]) if "gpus" in params else 0
    if gpus < 0:
        raise InvalidRequest("resources.backend_parameters.gpus must not be negative")
    priority = _int("priority", params["priority"]) if "priority" in params else 0
    asked = node_count(res.backend_parameters)
    nodes = 1 if asked is None else asked
    if nodes < 1:
        raise InvalidRequest("resources.backend_parameters.nodes must be at least 1")
    for key in SLURM_PARAMETERS:
        if key in params and not _SLURM_VALUE.fullmatch(params[key]):
            raise InvalidRequest(
                f"resources.backend_parameters.{key}={params[key]!r} has characters Slurm "
                "does not accept there; use letters, digits and _-.,&|:[]*"
            )
    if abs(priority) > 1_000_000_000:
        raise InvalidRequest(
            "resources.backend_parameters.priority must be between -1000000000 and 1000000000"
        )
    retry = parse_retry(params.get("retries"), params.get("retry_on"))
    after = tuple(dict.fromkeys(p.strip() for p in params.get("after", "").split(",") if p.strip()))
    return TaskOptions(
        cpus=res.cpu_cores or defaults.cpus,
        memory_gb=res.ram_gb if res.ram_gb is not None else defaults.memory_gb,
        memory_limited=res.ram_gb is not None or defaults.memory_limited,
        disk_gb=res.disk_gb,
        gpus=gpus,
        network=network,
        timeout=timeout,
        runtime=runtime,
        priority=priority,
        parameters=params,
        warnings=tuple(warnings),
        writable_inputs=writable_inputs,
        credentials=credentials,
        nodes=nodes,
        mpi_launcher=_mpi_launcher(params, nodes),
        retry=retry,
        after=after,
        keep_entrypoint=_keep_entrypoint(params),
        cache=_flag(params, "cache"),
        inputs_sha256=_inputs_sha256(params.get("inputs_sha256")),
    )


def _mpi_launcher(params: dict[str, str], nodes: int) -> bool:
    if "mpi" not in params:
        return False
    if params["mpi"].lower() != "launcher":
        raise InvalidRequest(
            f"resources.backend_parameters.mpi={params['mpi']!r} is unknown; use launcher "
            "(rank 0's mpirun starts the MPI processes of every rank), or leave it out"
        )
    return nodes > 1  # on one node mpirun starts its processes itself


def _keep_entrypoint(params: dict[str, str]) -> bool:
    entrypoint = params.get("entrypoint", "image").lower()
    if entrypoint not in ("image", "command"):
        raise InvalidRequest(
            f"resources.backend_parameters.entrypoint={entrypoint!r} is unknown; use image "
            "(the image's ENTRYPOINT runs the command) or command (the command runs alone)"
        )
    return entrypoint == "image"


def _inputs_sha256(text: str | None) -> dict[str, str]:
    if text is None:
        return {}
    fix = (
        "give a JSON object of absolute container paths to 64-digit sha256 hex, "
        'e.g. {"/in/a.txt": "9f86d0…"}'
    )
    try:
        found = json.loads(text)
    except ValueError:
        raise InvalidRequest(
            f"resources.backend_parameters.inputs_sha256 is not JSON; {fix}"
        ) from None
    if not isinstance(found, dict):
        raise InvalidRequest(f"resources.backend_parameters.inputs_sha256 is not an object; {fix}")
    for path, digest in found.items():
        if not path.startswith("/") or not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise InvalidRequest(
                f"resources.backend_parameters.inputs_sha256[{path!r}]={digest!r}: {fix}"
            )
    return found


def _flag(params: dict[str, str], key: str) -> bool:
    text = params.get(key, "false").lower()
    if text not in _TRUE | _FALSE:
        raise InvalidRequest(
            f"resources.backend_parameters.{key}={params[key]!r} must be true or false"
        )
    return text in _TRUE
