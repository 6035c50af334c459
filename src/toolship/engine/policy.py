"""What clients may ask of this server: the operator's policy, resolved and applied — pure.

Some features are the operator's choice, not a client's: a host process instead of
a container, the host's network, images read from the server's own files through a
transport (``oci-archive:/path``), the server user's cloud profiles.  A shared
server (``toolship serve``) refuses them unless its settings allow them; the
embedded server that the CLI starts for its user serves that user only, who is
its operator, so it allows what the user could do on the host anyway.  A refusal
is a 400 that names the setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from toolship.config import PolicySettings
from toolship.errors import InvalidRequest
from toolship.options import TaskOptions
from toolship.runtime import known_runtimes

__all__ = ["IMAGE_TRANSPORTS", "Policy", "check_image", "check_policy", "resolve_policy"]

# containers/image transports podman understands in front of an image name; each reads
# images from somewhere other than the image store (a file, a directory, a daemon).
IMAGE_TRANSPORTS = frozenset(
    {
        "containers-storage",
        "dir",
        "docker",
        "docker-archive",
        "docker-daemon",
        "oci",
        "oci-archive",
        "ostree",
        "sif",
        "tarball",
    }
)
_SHARED_RUNTIMES = ("podman", "docker")

# The distribution reference grammar: [registry[:port]/]path[:tag][@digest].
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?)"
_COMPONENT = r"(?:[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)"
_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
_FIX = "the operator may allow it in the server's settings"


@dataclass(frozen=True, slots=True)
class Policy:
    runtimes: frozenset[str]
    host_network: bool
    multi_node: bool
    image_transports: frozenset[str]
    s3_profiles: frozenset[str] | None  # None: any profile


def resolve_policy(settings: PolicySettings, *, embedded: bool) -> Policy:
    """The policy in force: each unset setting takes the default of this kind of server."""
    runtimes: list[str] | tuple[str, ...]
    if settings.runtimes is not None:
        runtimes = list(settings.runtimes)
    else:
        runtimes = known_runtimes() if embedded else _SHARED_RUNTIMES
    profiles = settings.s3_profiles
    if profiles is None:
        profiles = ["*"] if embedded else []
    return Policy(
        runtimes=frozenset(runtimes),
        host_network=settings.host_network if settings.host_network is not None else embedded,
        multi_node=settings.multi_node if settings.multi_node is not None else True,
        image_transports=frozenset(t.lower() for t in settings.image_transports),
        s3_profiles=None if "*" in profiles else frozenset(profiles),
    )


def _allowed(values: frozenset[str]) -> str:
    return ", ".join(sorted(values)) or "none"


def check_policy(
    options: TaskOptions, policy: Policy, *, default_runtime: str, backend: str
) -> None:
    """Refuse what the policy forbids, naming the setting."""
    allowed = policy.runtimes | {default_runtime}
    if options.runtime not in allowed:
        raise InvalidRequest(
            f"resources.backend_parameters.runtime={options.runtime} is refused by "
            f"policy.runtimes (allowed here: {_allowed(allowed)}); {_FIX}"
        )
    if options.nodes > 1:
        if not policy.multi_node:
            raise InvalidRequest(
                f"resources.backend_parameters.nodes={options.nodes}: multi-node tasks are "
                f"refused by policy.multi_node; run one node per task, or {_FIX}"
            )
        if backend == "slurm" and not policy.host_network:
            raise InvalidRequest(
                f"resources.backend_parameters.nodes={options.nodes}: the ranks of a "
                "multi-node task on Slurm talk over the host's network, which is refused by "
                f"policy.host_network; run one node per task, or {_FIX}"
            )
    profile = options.credentials.get("s3_profile")
    profiles = policy.s3_profiles
    if profile is not None and profiles is not None and profile not in profiles:
        raise InvalidRequest(
            f"resources.backend_parameters.s3_profile={profile!r} is refused by "
            f"policy.s3_profiles (allowed here: {_allowed(profiles)}); pass per-task "
            f"credentials (s3_access_key_id, s3_secret_access_key), or {_FIX}"
        )


def check_image(image: str, policy: Policy, where: str) -> None:
    """Only plain ``[registry/]name[:tag][@digest]`` references, unless a transport is allowed."""
    prefix, colon, rest = image.partition(":")
    transport = prefix.lower() if colon else ""
    if transport == "docker" and not rest.startswith("//"):
        transport = ""  # docker:latest is the image "docker", not the docker:// transport
    if transport in IMAGE_TRANSPORTS or "://" in image:
        name = transport or image.split("://", 1)[0].lower()
        if name in policy.image_transports:
            return
        raise InvalidRequest(
            f"{where} {image!r} names the image transport '{name}:', which is refused by "
            f"policy.image_transports (allowed here: {_allowed(policy.image_transports)}); "
            "a transport reads images from the server's files or daemons. Use a plain "
            f"[registry/]name[:tag][@digest] reference, or {_FIX}"
        )
    if len(image) > 512 or not _REFERENCE.fullmatch(image):
        raise InvalidRequest(
            f"{where} {image!r} is not a plain image reference [registry/]name[:tag][@digest] "
            "(lower-case name parts of letters, digits and . _ -); write it as e.g. "
            "docker.io/library/alpine:3.20"
        )
