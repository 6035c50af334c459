"""Building a service from an uploaded folder: podman build, its log streamed, then registered.

A build runs in a thread; its output goes to ``builds/ID/build.log`` under the
server's home, which any number of readers follow while it grows.  Builds live as
long as the server: a restart forgets them (their logs stay on disk), and a build
that was running is not resumed; nothing else depends on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from toolship.catalog.catalog import Catalog, ImageSource
from toolship.catalog.confine import BuildLimits
from toolship.catalog.images import ImageFacts, find_containerfile
from toolship.catalog.labels import read_labels
from toolship.catalog.trust import ImageResolver
from toolship.errors import InvalidRequest, NotFound, ToolshipError
from toolship.services import BuildInfo, BuildState
from toolship.timeutil import now_rfc3339

__all__ = ["Builder", "Builds", "ImageTools"]

log = logging.getLogger(__name__)

_READ = 64 * 1024


class Builder(Protocol):
    """The image tools a build needs (``images.py``)."""

    def unpack_context(self, source: BinaryIO, dest: Path) -> Path: ...

    def build(
        self,
        context: Path,
        *,
        file: str | None,
        tag: str,
        network: bool,
        log: Callable[[bytes], None],
        limits: BuildLimits,
    ) -> ImageFacts: ...

    def retag(self, facts: ImageFacts, reference: str) -> ImageFacts: ...

    def untag(self, reference: str) -> None: ...


class ImageTools(ImageSource, ImageResolver, Builder, Protocol):
    """Everything the server asks of the image tools (``images.Images``; tests: a fake)."""


@dataclass
class _Build:
    info: BuildInfo
    log_path: Path
    changed: asyncio.Event = field(default_factory=asyncio.Event)


def _slug(name: str) -> str:
    """An image repository name component from a service name ("NLTK POS" → "nltk-pos")."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:100] or "service"


class Builds:
    """The builds this server ran since it started; ``at_once`` of them run at a time, each
    within ``limits`` (the others wait, and their logs say so)."""

    def __init__(
        self, catalog: Catalog, images: Builder, root: Path, *, limits: BuildLimits, at_once: int
    ) -> None:
        self.catalog = catalog
        self.images = images
        self.root = root
        self.limits = limits
        self.at_once = at_once
        self._slots = asyncio.Semaphore(at_once)
        self._builds: dict[str, _Build] = {}
        self._running: set[asyncio.Task[None]] = set()

    def get(self, build_id: str, *, reader: str | None = None) -> BuildInfo:
        """The build; ``reader``: only if it is this owner's (another's is not found)."""
        return self._get(build_id, reader).info

    def _get(self, build_id: str, reader: str | None = None) -> _Build:
        build = self._builds.get(build_id)
        if build is None or (reader is not None and build.info.owner != reader):
            raise NotFound(
                f"no build {build_id!r} on this server (builds are kept until it restarts)"
            )
        return build

    async def start(
        self,
        upload: BinaryIO,
        *,
        file: str | None,
        name: str | None,
        version: str | None,
        network: bool,
        owner: str | None = None,
    ) -> BuildInfo:
        """Unpack the context (a bad one is a 400 now) and start building it for ``owner``."""
        build_id = secrets.token_hex(8)
        folder = self.root / build_id
        folder.mkdir(parents=True, mode=0o700)
        context = folder / "context"
        try:
            await asyncio.to_thread(self.images.unpack_context, upload, context)
            containerfile = await asyncio.to_thread(_containerfile, context, file)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        build = _Build(
            BuildInfo(
                id=build_id,
                state=BuildState.RUNNING,
                name=name,
                started=now_rfc3339(),
                owner=owner,
            ),
            folder / "build.log",
        )
        build.log_path.touch(mode=0o600)
        self._builds[build_id] = build
        loop = asyncio.get_running_loop()
        run = functools.partial(
            self._run, build, context, containerfile, name, version, network, loop
        )
        job = asyncio.create_task(self._take_turn(build, run), name=f"build-{build_id}")
        self._running.add(job)
        job.add_done_callback(self._running.discard)
        return build.info

    async def _take_turn(self, build: _Build, run: Callable[[], None]) -> None:
        """Run ``run`` in a thread once fewer than ``at_once`` builds are running."""
        if self._slots.locked():
            with build.log_path.open("ab") as out:
                out.write(
                    f"toolship: waiting: images.builds_at_once = {self.at_once} builds are "
                    "running; this one starts when one of them ends\n".encode()
                )
            build.changed.set()
        async with self._slots:
            await asyncio.to_thread(run)

    def _run(
        self,
        build: _Build,
        context: Path,
        containerfile: tuple[str, str],
        name: str | None,
        version: str | None,
        network: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        path, text = containerfile
        with build.log_path.open("ab", buffering=0) as out:

            def write(chunk: bytes) -> None:
                out.write(chunk)
                loop.call_soon_threadsafe(build.changed.set)

            scratch = f"localhost/toolship-build:{build.info.id}"
            try:
                facts = self.images.build(
                    context,
                    file=path,
                    tag=scratch,
                    network=network,
                    log=write,
                    limits=self.limits,
                )
                try:
                    described = read_labels(facts.labels, cmd=facts.cmd)
                    service = name or described.name or context.parent.name
                    label = version or described.version or build.info.id
                    facts = self.images.retag(facts, f"localhost/{_slug(service)}:{label}")
                    done = self.catalog.register(
                        facts.reference,
                        name=name,
                        version=version,
                        facts=facts,
                        source="build",
                        containerfile=text,
                    )
                finally:  # the build's own name goes; the service's stays
                    with contextlib.suppress(ToolshipError):
                        self.images.untag(scratch)
                build.info.service = done.version
                build.info.name = done.version.name
                build.info.state = BuildState.SUCCEEDED
                write(
                    f"registered {done.version.name}@{done.version.version} "
                    f"({done.version.image})\n".encode()
                )
            except ToolshipError as exc:
                build.info.state = BuildState.FAILED
                build.info.error = exc.message
                write(f"build failed: {exc.message}\n".encode())
            except Exception as exc:
                log.exception("build %s failed", build.info.id)
                build.info.state = BuildState.FAILED
                build.info.error = f"internal error ({type(exc).__name__}); see the server log"
                write(f"build failed: {build.info.error}\n".encode())
            finally:
                build.info.finished = now_rfc3339()
                shutil.rmtree(context, ignore_errors=True)
                loop.call_soon_threadsafe(build.changed.set)

    async def log(self, build_id: str, *, follow: bool) -> AsyncIterator[bytes]:
        """The build's log from the start; with ``follow``, until the build ends."""
        build = self._get(build_id)
        offset = 0
        while True:
            build.changed.clear()
            finished = build.info.state is not BuildState.RUNNING
            chunk = await asyncio.to_thread(_read, build.log_path, offset)
            while chunk:
                offset += len(chunk)
                yield chunk
                chunk = await asyncio.to_thread(_read, build.log_path, offset)
            if finished or not follow:
                return
            await build.changed.wait()


def _read(path: Path, offset: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(_READ)


def _containerfile(context: Path, file: str | None) -> tuple[str, str]:
    """The Containerfile's path in the context and its text (kept with the version)."""
    path = find_containerfile(context, file)
    name = str(path.relative_to(context.resolve()))
    try:
        return name, path.read_text(errors="replace")
    except OSError as exc:
        raise InvalidRequest(f"{name}: {exc.strerror}") from None
