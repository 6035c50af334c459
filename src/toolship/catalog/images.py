"""Images for the catalog: inspect, build, tag and push with podman, look into registries
with skopeo; nothing here pulls an image.

Every function blocks (callers run it in a thread).  A reference is
``[REGISTRY/]NAME[:TAG][@sha256:…]``, never a transport (``docker://``, ``oci-archive:``).
A reference that names a registry other than ``localhost`` is looked up in that registry
first, so that its digest is the one the registry serves (what a Slurm node pulls), and
in this host's storage only when the registry does not have it; any other reference
(``localhost/NAME``, a short name) only in this host's storage.  The registry's
transport security comes from the containers configuration (``registries.conf.d``:
``scripts/registry.sh`` marks the loopback test registry insecure).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from toolship.catalog import signatures
from toolship.catalog.confine import BuildLimits, Confinement
from toolship.catalog.context import unpack_context
from toolship.config import ImageSettings
from toolship.errors import InvalidRequest, RuntimeUnavailable
from toolship.runtime.base import registry_host
from toolship.services import Signature

__all__ = [
    "BuildFailed",
    "BuildLimits",
    "ImageFacts",
    "ImageNotFound",
    "Images",
    "build",
    "find_containerfile",
    "inspect",
    "push",
    "resolve",
    "retag",
    "unpack_context",
]

_TIMEOUT = 120.0  # seconds for one podman or skopeo call that moves no layers
_PUSH_TIMEOUT = 1800.0
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?)"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)
_STEP = re.compile(rb"^STEP \d+/\d+: ")


class ImageNotFound(InvalidRequest):
    """No such image in this host's storage nor in its registry (400: the reference is the
    caller's)."""


class BuildFailed(InvalidRequest):
    """``podman build`` failed; the message names the failing step, the log has its output."""


@dataclass(frozen=True)
class ImageFacts:
    repository: str  # where it lives: 127.0.0.1:5055/team/tool, localhost/tool
    digest: str  # the manifest's sha256:…, as that repository serves it
    image_id: str  # the config's digest (podman's image id), sha256:…
    size: int | None  # bytes (local: unpacked; registry: compressed layers and config)
    created: str | None  # RFC 3339, as the image says
    labels: dict[str, str] = field(default_factory=dict)
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    reference: str = ""  # what was asked (or tagged, or pushed)
    source: str = "local"  # local or registry: where the facts were read

    @property
    def image(self) -> str:
        """What a task runs: ``repository@digest``."""
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class _Reference:
    name: str
    tag: str | None
    digest: str | None

    @property
    def domain(self) -> str | None:
        return registry_host(self.name)

    @property
    def in_registry(self) -> bool:
        return self.domain not in (None, "localhost")


def _parse(reference: str) -> _Reference:
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        raise InvalidRequest(
            f"image reference {reference!r} is not [REGISTRY/]NAME[:TAG][@sha256:DIGEST] "
            "(lower-case name components; no transport such as docker://)"
        )
    return _Reference(match["name"], match["tag"], match["digest"])


def _run(argv: Sequence[str], *, timeout: float = _TIMEOUT) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise RuntimeUnavailable(
            f"{argv[0]} is not installed on the server: install podman and skopeo "
            "(scripts/setup-host.sh does)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise RuntimeUnavailable(
            f"{' '.join(argv[:3])} did not finish within {timeout:.0f} s; is the registry "
            "reachable?"
        ) from exc


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "no message"
    last = lines[-1]
    found = re.search(r'msg="(.*)"', last)  # skopeo's logrus lines
    return found[1].replace('\\"', '"') if found else last.removeprefix("Error: ")


def inspect(reference: str) -> ImageFacts:
    """What ``reference`` is: its repository, manifest digest, labels, CMD, size.

    A registry reference is read from the registry first (its digest is what nodes pull),
    then from this host's storage; other references from this host's storage only.
    A reference with ``@sha256:…`` must have that digest.  Raises ``ImageNotFound`` when
    neither has it (saying where it looked and how to build, load or push it),
    ``InvalidRequest`` for a malformed reference, ``RuntimeUnavailable`` when podman or
    skopeo is missing or hangs.
    """
    ref = _parse(reference)
    problems: list[str] = []
    if ref.in_registry:
        try:
            return _registry_facts(ref, reference)
        except ImageNotFound as exc:
            problems.append(exc.message)
    facts = _local_facts(ref, reference)
    if facts is not None:
        return facts
    problems.append(f"{reference!r} is not in this host's image storage")
    fix = (
        f"push it there (podman push IMAGE {ref.name}:TAG)"
        if ref.in_registry
        else "build it (podman build -t NAME DIR), load it (podman load -i FILE), or give "
        "its full registry reference"
    )
    raise ImageNotFound(f"image not found: {'; '.join(problems)}: {fix}")


def resolve(reference: str) -> tuple[str, str]:
    """``(repository, manifest digest)`` of ``reference``, found as :func:`inspect` finds it.

    Raises what :func:`inspect` raises.
    """
    facts = inspect(reference)
    return facts.repository, facts.digest


def _local_facts(ref: _Reference, reference: str) -> ImageFacts | None:
    done = _run(["podman", "image", "inspect", reference])
    if done.returncode != 0:
        if "image not known" in done.stderr or "no such image" in done.stderr.lower():
            return None
        raise RuntimeUnavailable(f"podman image inspect {reference}: {_last_line(done.stderr)}")
    data: dict[str, Any] = json.loads(done.stdout)[0]
    config = data.get("Config") or {}
    return ImageFacts(
        repository=_local_repository(ref, data),
        digest=ref.digest or data["Digest"],
        image_id="sha256:" + data["Id"].removeprefix("sha256:"),
        size=data.get("Size"),
        created=data.get("Created"),
        labels=dict(config.get("Labels") or data.get("Labels") or {}),
        cmd=list(config.get("Cmd") or []),
        entrypoint=list(config.get("Entrypoint") or []),
        reference=reference,
        source="local",
    )


def _local_repository(ref: _Reference, data: dict[str, Any]) -> str:
    """The name podman knows ``ref`` by: a short name becomes ``localhost/NAME`` (or the
    registry name it was pulled as)."""
    names: list[str] = [n.partition("@")[0] for n in data.get("RepoDigests") or []]
    names += [n.rpartition(":")[0] for n in data.get("RepoTags") or []]
    for candidate in names:
        if candidate == ref.name or candidate.endswith("/" + ref.name):
            return candidate
    return ref.name if ref.domain else f"localhost/{ref.name}"


def _registry_facts(ref: _Reference, reference: str) -> ImageFacts:
    manifest = _skopeo_inspect(ref, reference, raw_config=False)
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    if ref.digest and ref.digest != digest:  # pragma: no cover - the registry checks it
        raise ImageNotFound(f"{reference!r} is served with digest {digest}")
    pinned = _Reference(ref.name, None, digest)
    config_raw = _skopeo_inspect(pinned, f"{ref.name}@{digest}", raw_config=True)
    config: dict[str, Any] = json.loads(config_raw)
    parsed: dict[str, Any] = json.loads(manifest)
    size = None
    if "layers" in parsed:  # one image, not a list of platforms
        size = parsed["config"]["size"] + sum(layer["size"] for layer in parsed["layers"])
    inner = config.get("config") or {}
    return ImageFacts(
        repository=ref.name,
        digest=digest,
        image_id="sha256:" + hashlib.sha256(config_raw).hexdigest(),
        size=size,
        created=config.get("created"),
        labels=dict(inner.get("Labels") or {}),
        cmd=list(inner.get("Cmd") or []),
        entrypoint=list(inner.get("Entrypoint") or []),
        reference=reference,
        source="registry",
    )


def _skopeo_inspect(ref: _Reference, reference: str, *, raw_config: bool) -> bytes:
    argv = ["skopeo", "inspect", "--raw", *(["--config"] if raw_config else [])]
    try:
        done = subprocess.run(
            [*argv, f"docker://{reference}"], capture_output=True, timeout=_TIMEOUT, check=False
        )
    except FileNotFoundError as exc:
        raise RuntimeUnavailable(
            "skopeo is not installed on the server: install it (scripts/setup-host.sh does)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ImageNotFound(
            f"registry {ref.domain} did not answer within {_TIMEOUT:.0f} s for {reference!r}"
        ) from exc
    if done.returncode != 0:
        why = _last_line(done.stderr.decode(errors="replace"))
        raise ImageNotFound(f"registry {ref.domain} has no {reference!r} ({why})")
    return done.stdout


def build(
    context: Path,
    *,
    file: str | None,
    tag: str,
    network: bool,
    log: Callable[[bytes], None],
    limits: BuildLimits | None = None,
) -> ImageFacts:
    """Build ``context`` with podman as ``tag``; each line of its output goes to ``log``.

    Offline unless ``network``: ``RUN`` steps get no network and base images are never
    pulled (``FROM`` a local image works).  ``file`` is the Containerfile's path inside
    the context (default ``Containerfile``, then ``Dockerfile``).  With ``limits`` the RUN
    steps run as a task runs, within those limits, and the build is stopped at their
    deadline (see :mod:`toolship.catalog.confine`); None: as podman runs them, without a
    deadline.  Raises ``InvalidRequest`` when the Containerfile is missing or outside the
    context, ``BuildFailed`` naming the failing step and podman's reason when the build
    fails or runs past its deadline, ``RuntimeUnavailable`` when podman is missing.
    """
    containerfile = find_containerfile(context, file)
    with tempfile.TemporaryDirectory(prefix="toolship-build-") as tmp:
        confine = None if limits is None else Confinement(limits, Path(tmp))
        if confine is not None:
            confine.write()
            log(f"toolship: {confine.limits.describe()}".encode())
        argv = [
            "podman", *(confine.global_args() if confine else []),
            "build", f"--network={'private' if network else 'none'}",
            # --pull takes its value only after "=" (a bare --pull means "always").
            f"--pull={'missing' if network else 'never'}",
            *(confine.build_args() if confine else []),
            "--file", str(containerfile), "--tag", tag, str(context),
        ]  # fmt: skip
        _podman_build(argv, confine, log)
    facts = _local_facts(_parse(tag), tag)
    if facts is None:  # pragma: no cover - podman just built it
        raise BuildFailed(f"podman build succeeded but {tag} is not in the image storage")
    return replace(facts, source="build")


def _podman_build(
    argv: list[str], confine: Confinement | None, log: Callable[[bytes], None]
) -> None:
    """Run ``argv``, its output to ``log``; raise ``BuildFailed`` naming the failing step."""
    step = b""
    last = b""
    killed = False
    try:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
    except FileNotFoundError as exc:
        raise RuntimeUnavailable("podman is not installed on the server") from exc
    assert proc.stdout is not None
    expired = threading.Event()

    def deadline() -> None:
        expired.set()
        assert confine is not None
        confine.stop(proc)

    timer = None
    if confine is not None:
        timer = threading.Timer(confine.limits.timeout, deadline)
        timer.daemon = True
        timer.start()
    with proc:
        for line in proc.stdout:
            log(line)
            if _STEP.match(line):
                step = line.strip()
                killed = False
            if line.strip():
                last = line.strip()
            killed = killed or line.startswith(b"container exited on killed")
    if timer is not None:
        timer.cancel()
    where = f" at {step.decode(errors='replace')}" if step else ""
    if expired.is_set() and proc.returncode != 0 and confine is not None:
        message = (
            f"the build was stopped{where}: it ran past images.build_timeout_seconds "
            f"({confine.limits.timeout:g} s); raise that setting on the server, or make the "
            "build finish sooner"
        )
        log(f"toolship: {message}\n".encode())
        raise BuildFailed(message)
    if proc.returncode != 0:
        reason = last.decode(errors="replace").removeprefix("Error: ")
        reason = re.sub(r'^building at STEP ".*": ', "", reason)
        if killed and confine is not None:
            reason = (
                "the step was killed: it may have needed more than images.build_memory_gb "
                f"({confine.limits.memory_bytes / 1024**3:g} GiB of memory)"
            )
        raise BuildFailed(
            f"the build failed{where} ({reason}); the build log shows that step's output"
        )


def find_containerfile(context: Path, file: str | None) -> Path:
    """The Containerfile inside ``context``: ``file``, else ``Containerfile``, else
    ``Dockerfile``; ``InvalidRequest`` when it is missing or outside the context."""
    names = [file] if file else ["Containerfile", "Dockerfile"]
    root = context.resolve()
    for name in names:
        path = (context / name).resolve()
        if not path.is_relative_to(root):
            raise InvalidRequest(
                f"Containerfile {name!r} is outside the build context; give a path inside it"
            )
        if path.is_file():
            return path
    raise InvalidRequest(
        f"the build context has no {' or '.join(names)}: add one, or name it with --file"
    )


def retag(facts: ImageFacts, reference: str) -> ImageFacts:
    """Give the local image of ``facts`` the name ``reference`` too (``podman tag``).

    Returns its facts under that name (same digest and id).  Raises ``InvalidRequest`` for
    a malformed reference, ``RuntimeUnavailable`` when podman fails.
    """
    ref = _parse(reference)
    done = _run(["podman", "tag", facts.image_id, reference])
    if done.returncode != 0:
        raise RuntimeUnavailable(f"podman tag {reference}: {_last_line(done.stderr)}")
    return replace(facts, repository=ref.name, reference=reference)


def untag(reference: str) -> None:
    """Remove the name ``reference`` (the image stays under its other names); no error
    when there is no such name."""
    _run(["podman", "untag", reference, reference])


def pull(image: str) -> None:
    """Bring ``REPO@sha256:…`` from its registry into this host's storage (``podman pull``).

    A version registered from a registry then runs here even when its registry is not one
    nodes pull from (``images.pull_from``).  Raises ``RuntimeUnavailable`` when the pull
    fails.
    """
    done = _run(["podman", "pull", "-q", image], timeout=_PUSH_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeUnavailable(f"podman pull {image}: {_last_line(done.stderr)}")


def push(facts: ImageFacts, registry: str) -> ImageFacts:
    """Push the local image of ``facts`` to ``registry`` (``HOST[:PORT][/PATH]``).

    It goes to ``REGISTRY/NAME:TAG`` (NAME and TAG from ``facts.reference``; TAG
    ``latest`` when it has none); returns facts with that repository and the digest the
    registry stored.  Raises ``RuntimeUnavailable`` naming the registry and podman's
    reason when the push fails (the server's registry setting is the operator's).
    """
    ref = _parse(facts.reference or facts.repository)
    path = ref.name.split("/", 1)[1] if ref.domain else ref.name
    target = f"{registry.rstrip('/')}/{path}:{ref.tag or 'latest'}"
    _parse(target)
    with tempfile.TemporaryDirectory(prefix="toolship-push-") as tmp:
        digestfile = Path(tmp) / "digest"
        argv = ["podman", "push", "--quiet", "--digestfile", str(digestfile),
                facts.image_id, target]  # fmt: skip
        done = _run(argv, timeout=_PUSH_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeUnavailable(
                f"pushing {facts.reference or facts.image_id} to {target} failed "
                f"({_last_line(done.stderr)}); check images.registry and that the registry "
                "runs (scripts/registry.sh status)"
            )
        digest = digestfile.read_text().strip()
    return replace(
        facts,
        repository=target.rpartition(":")[0],
        digest=digest,
        reference=target,
        source="registry",
    )


class Images:
    """The image tools with one server's ``images`` settings: what the catalog, its
    builds and the trust policy call (each method as the function of the same name)."""

    def __init__(self, settings: ImageSettings) -> None:
        self.settings = settings

    def inspect(self, reference: str) -> ImageFacts:
        return inspect(reference)

    def resolve(self, reference: str) -> tuple[str, str]:
        return resolve(reference)

    def push(self, facts: ImageFacts, registry: str) -> ImageFacts:
        return push(facts, registry)

    def retag(self, facts: ImageFacts, reference: str) -> ImageFacts:
        return retag(facts, reference)

    def untag(self, reference: str) -> None:
        untag(reference)

    def pull(self, image: str) -> None:
        pull(image)

    def build(
        self,
        context: Path,
        *,
        file: str | None,
        tag: str,
        network: bool,
        log: Callable[[bytes], None],
        limits: BuildLimits,
    ) -> ImageFacts:
        return build(context, file=file, tag=tag, network=network, log=log, limits=limits)

    def unpack_context(self, source: BinaryIO, dest: Path) -> Path:
        return unpack_context(source, dest)

    def verify(self, repository: str, digest: str) -> Signature | None:
        """The signature that verified; None when ``images.signed_by`` requires none.

        Raises ``signatures.ImageRefused`` as :func:`signatures.verify` does.
        """
        if not self.settings.signed_by:
            return None
        return signatures.verify(
            repository, digest, self.settings.signed_by, registries_d=self.settings.registries_d
        )
