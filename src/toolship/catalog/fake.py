"""Image tools in memory, for the catalog's API tests: no podman, no registry.

An image is its labels and CMD; ``add`` makes one (as ``podman build`` or a push
would), and moving a tag is adding another image under the same reference.  A
build reads the Containerfile's ``LABEL`` and ``CMD`` lines (JSON form) and fails
when it holds ``RUN false``, writing what podman would to the log; one that holds
``RUN hold`` waits until ``release`` is set.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from toolship.catalog.confine import BuildLimits
from toolship.catalog.context import unpack_context
from toolship.catalog.images import BuildFailed, ImageFacts, ImageNotFound
from toolship.catalog.signatures import ImageRefused
from toolship.config import ImageSettings
from toolship.services import Signature

__all__ = ["FakeImages"]

_LABEL = re.compile(r"^LABEL\s+(.*)$", re.MULTILINE)
_CMD = re.compile(r"^CMD\s+(\[.*\])\s*$", re.MULTILINE)


class FakeImages:
    """Satisfies ``catalog.builds.ImageTools``; one instance per app (see ``factory``)."""

    def __init__(self, settings: ImageSettings | None = None) -> None:
        self.settings = settings or ImageSettings()
        self.tags: dict[str, ImageFacts] = {}  # repository:tag → what it names now
        self.by_digest: dict[str, ImageFacts] = {}
        self.signed: dict[str, str] = {}  # digest → key name
        self.pulled: list[str] = []  # every image pull() brought in
        self.asked: list[str] = []  # every reference inspect() or resolve() was asked for
        self.build_limits: list[BuildLimits] = []  # what each build was given
        self.release = threading.Event()  # a build with "RUN hold" waits for it

    def factory(self) -> Callable[[ImageSettings], FakeImages]:
        def make(settings: ImageSettings) -> FakeImages:
            self.settings = settings
            return self

        return make

    def add(
        self,
        reference: str,
        labels: dict[str, str],
        cmd: Sequence[str] = ("true",),
        *,
        source: str = "local",
    ) -> ImageFacts:
        """An image named ``reference`` (REPO:TAG); a reference that exists moves to it."""
        repository, _, tag = reference.rpartition(":")
        content = json.dumps([reference, labels, list(cmd), len(self.by_digest)])
        digest = "sha256:" + hashlib.sha256(content.encode()).hexdigest()
        facts = ImageFacts(
            repository=repository,
            digest=digest,
            image_id="sha256:" + hashlib.sha256(digest.encode()).hexdigest(),
            size=1024,
            created="2026-11-28T00:00:00Z",
            labels=dict(labels),
            cmd=list(cmd),
            reference=reference,
            source=source,
        )
        self.tags[f"{repository}:{tag}"] = facts
        self.by_digest[digest] = facts
        return facts

    def inspect(self, reference: str) -> ImageFacts:
        self.asked.append(reference)
        name, _, digest = reference.partition("@")
        if digest:
            found = self.by_digest.get(digest)
        else:
            found = self.tags.get(name if ":" in name.rpartition("/")[2] else f"{name}:latest")
        if found is None:
            raise ImageNotFound(f"image {reference!r} is not in this host's storage")
        return replace(found, reference=reference)

    def resolve(self, reference: str) -> tuple[str, str]:
        facts = self.inspect(reference)
        return facts.repository, facts.digest

    def push(self, facts: ImageFacts, registry: str) -> ImageFacts:
        pushed = replace(facts, repository=f"{registry}/{facts.repository.rpartition('/')[2]}")
        self.by_digest[pushed.digest] = pushed
        return pushed

    def pull(self, image: str) -> None:
        self.pulled.append(image)

    def untag(self, reference: str) -> None:
        self.tags.pop(reference, None)

    def retag(self, facts: ImageFacts, reference: str) -> ImageFacts:
        repository, _, tag = reference.rpartition(":")
        moved = replace(facts, repository=repository, reference=reference)
        self.tags[f"{repository}:{tag}"] = moved
        return moved

    def verify(self, repository: str, digest: str) -> Signature | None:
        if not self.settings.signed_by:
            return None
        key = self.signed.get(digest)
        if key is None:
            raise ImageRefused(f"{repository}@{digest} is not signed")
        return Signature(verified=True, key=key, kind="gpg")

    def unpack_context(self, source: BinaryIO, dest: Path) -> Path:
        return unpack_context(source, dest)

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
        text = (context / (file or "Containerfile")).read_text()
        self.build_limits.append(limits)
        log(b"STEP 1/2: FROM localhost/toolship-busybox\n")
        if "RUN hold" in text and not self.release.wait(60):
            raise BuildFailed("the build was stopped at STEP 2/2: RUN hold: never released")
        if "RUN false" in text:
            log(b'STEP 2/2: RUN false\nError: building at STEP "RUN false": exit status 1\n')
            raise BuildFailed('the build failed at STEP 2/2 "RUN false" (exit status 1)')
        labels: dict[str, str] = {}
        for line in _LABEL.findall(text):
            for pair in shlex.split(line):
                key, _, value = pair.partition("=")
                labels[key] = value
        found = _CMD.search(text)
        cmd = json.loads(found.group(1)) if found else []
        log(b"STEP 2/2: LABEL ...\nCOMMIT\n")
        return self.add(tag, labels, cmd)
