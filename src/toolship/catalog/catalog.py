"""Registering a service: read the image's labels, pin its digest, store an immutable version."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from toolship.catalog.images import ImageFacts
from toolship.catalog.labels import read_labels
from toolship.catalog.trust import allowed, repository_of
from toolship.config import ImageSettings
from toolship.db.catalog import CatalogStore
from toolship.errors import InvalidRequest, NotFound
from toolship.services import ServiceVersion, Signature
from toolship.timeutil import now_rfc3339

__all__ = ["Catalog", "ImageSource", "Registered", "check_name"]

# A name is what users type: GEF's names have spaces ("NLTK POS-tagging"); never a
# slash or an @ (NAME@VERSION), never control characters.
_NAME = re.compile(r"[^\s/@\x00-\x1f\x7f](?:[^/@\x00-\x1f\x7f]{0,198}[^\s/@\x00-\x1f\x7f])?")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_NAMED_BY = "eudat.gef.service.name, org.opencontainers.image.title or toolship.service.name"


class ImageSource(Protocol):
    """What the catalog asks of the image tools (``images.py``; tests: a fake)."""

    def inspect(self, reference: str) -> ImageFacts: ...

    def push(self, facts: ImageFacts, registry: str) -> ImageFacts: ...

    def pull(self, image: str) -> None: ...

    def verify(self, repository: str, digest: str) -> Signature | None:
        """The verified signature; None when the server requires none."""
        ...


@dataclass(frozen=True, slots=True)
class Registered:
    version: ServiceVersion
    created: bool  # False: this name already pinned this digest (that version is returned)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"service name {name!r} is not usable: 1-200 characters, no '/', '@' or control "
            "characters, not starting or ending with a space"
        )
    return name


def _check_version(version: str) -> str:
    if not _VERSION.fullmatch(version):
        raise InvalidRequest(
            f"version {version!r} is not usable: letters, digits and . _ + - "
            "(1-128 characters, starting with a letter or digit)"
        )
    return version


class Catalog:
    """The catalog's rules around its store: names, versions, where images may come from."""

    def __init__(
        self,
        store: CatalogStore,
        settings: ImageSettings,
        images: ImageSource,
        *,
        registered: Callable[[ServiceVersion], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.images = images
        self.registered = registered  # told of each new version (its SBOM is queued so)

    def register(
        self,
        reference: str,
        *,
        name: str | None = None,
        version: str | None = None,
        facts: ImageFacts | None = None,
        source: str | None = None,
        containerfile: str | None = None,
    ) -> Registered:
        """Register ``reference`` (or the image just built: ``facts``) as a service version.

        The same digest under the same name is the version it already is; a version
        label that another digest holds gets the digest appended (``1.0+0123456789ab``),
        so a moved tag becomes a new version and no version ever changes.
        """
        if name is not None:
            check_name(name)
        if version is not None:
            _check_version(version)
        if facts is None:
            self._check_approved(repository_of(reference))  # before asking any registry
            facts = self.images.inspect(reference)
        if source == "build" and self.settings.registry:
            facts = self.images.push(facts, self.settings.registry)
        self._check_approved(facts.repository)
        described = read_labels(facts.labels, cmd=facts.cmd)
        chosen = name or described.name
        if not chosen:
            raise InvalidRequest(
                f"image {reference} has no name label ({_NAMED_BY}): give it one, "
                "or name the service with --name"
            )
        check_name(chosen)
        earlier = self.store.versions(chosen)
        for v in earlier:
            if v.digest == facts.digest and v.repository == facts.repository:
                return Registered(v, created=False)
        signature = self.images.verify(facts.repository, facts.digest)
        if signature is None and facts.source == "registry":
            # Here it then runs whatever the nodes may pull (a verified image is copied in).
            self.images.pull(facts.image)
        label = version or described.version or f"sha256.{_short(facts.digest)}"
        _check_version(label)
        if version is None and any(v.version == label for v in earlier):
            label = f"{label}+{_short(facts.digest)}"
        new = ServiceVersion(
            name=chosen,
            version=label,
            description=described.description,
            repository=facts.repository,
            digest=facts.digest,
            image=facts.image,
            image_id=facts.image_id,
            size=facts.size,
            created=facts.created,
            registered=now_rfc3339(),
            source=source or facts.source,
            reference=reference,
            labels=dict(facts.labels),
            interface=described.interface,
            containerfile=containerfile is not None,
            signature=signature,
            oci=dict(described.oci),
        )
        added = self.store.add(new, containerfile)
        if self.registered is not None:
            self.registered(added)
        return Registered(added, created=True)

    def _check_approved(self, repository: str) -> None:
        if not allowed(repository, self.settings):
            registries = self.settings.approved_registries
            raise InvalidRequest(
                f"image {repository} is not from an approved registry "
                f"(images.approved_registries: {', '.join(registries)}); "
                "push it to one of them and register it from there"
            )

    def runnable(self, name: str, version: str | None) -> ServiceVersion:
        """The version a new run uses: the latest, or the one named if not deprecated."""
        try:
            found = self.store.get(name, version)
        except NotFound:
            versions = self.store.versions(name) if version is None else []
            if versions:  # every one is deprecated: the service exists, so no 404
                raise InvalidRequest(
                    f"every version of service {name!r} is deprecated "
                    f"({', '.join(v.version for v in versions)}): new runs may not use them; "
                    "add a new version (toolship service add IMAGE --name NAME)"
                ) from None
            raise
        if found.deprecated:
            try:
                latest = f" (latest: {self.store.get(name).version})"
            except NotFound:
                latest = ""
            raise InvalidRequest(
                f"version {found.version} of service {name!r} is deprecated: new runs may not "
                f"use it; run another version{latest}"
            )
        return found


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]
