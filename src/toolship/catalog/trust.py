"""Which images may run on this server: the operator's ``images`` settings, applied at creation.

``images.trust``: ``any`` runs what a task names (the embedded default); ``digest``
resolves each image to its manifest digest when the task is created and runs that
digest, whatever the tag does afterwards; ``catalog`` runs only images of catalogued
service versions.  ``approved_registries`` limits where images come from, and
``signed_by`` requires a signature by a configured key, verified offline.  A task
that breaks a rule gets a 400 that names the rule and how to comply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from toolship.config import ImageSettings
from toolship.db.catalog import CatalogStore
from toolship.errors import InvalidRequest
from toolship.runtime.base import registry_host, within
from toolship.services import Signature

__all__ = [
    "ImageResolver",
    "ImageTrust",
    "allowed",
    "approved",
    "normalized",
    "registry_of",
    "repository_of",
]

# Verified digests remembered (a digest's bytes never change; nor does its signature).
_REMEMBERED = 4096


class ImageResolver(Protocol):
    def resolve(self, reference: str) -> tuple[str, str]:
        """(repository, manifest digest) of ``reference`` (see ``images.resolve``)."""
        ...

    def verify(self, repository: str, digest: str) -> Signature | None: ...


def registry_of(repository: str) -> str:
    """The registry host of an image repository (``docker.io`` when it names none)."""
    return registry_host(repository) or "docker.io"


def normalized(repository: str) -> str:
    """``repository`` with its registry host, as podman reads a short name."""
    if registry_of(repository) != "docker.io" or repository.startswith("docker.io/"):
        return repository
    return f"docker.io/{repository}" if "/" in repository else f"docker.io/library/{repository}"


def approved(repository: str, registries: Sequence[str]) -> bool:
    """Whether ``repository`` comes from one of ``registries`` (hosts or host/path prefixes)."""
    return not registries or within(normalized(repository), registries)


def allowed(repository: str, settings: ImageSettings) -> bool:
    """Whether images may come from ``repository``: an approved registry, or the catalog's
    own (``images.registry``, where ``service build`` pushes)."""
    own = [settings.registry] if settings.registry else []
    return approved(repository, settings.approved_registries) or within(normalized(repository), own)


def repository_of(reference: str) -> str:
    """The repository part of ``IMAGE[:TAG][@DIGEST]``."""
    name = reference.partition("@")[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


class ImageTrust:
    """The ``images`` rules of one server; ``pin`` applies them to one image of a task."""

    def __init__(self, settings: ImageSettings, store: CatalogStore, images: ImageResolver) -> None:
        self.settings = settings
        self.store = store
        self.images = images
        self._verified: dict[tuple[str, str], Signature | None] = {}

    @property
    def active(self) -> bool:
        """Whether any rule applies (with none, creating a task does no image I/O)."""
        s = self.settings
        return s.trust != "any" or bool(s.approved_registries) or bool(s.signed_by)

    def pin(self, image: str, field: str) -> str:
        """The image to run for ``image``: itself under ``any``, else ``REPO@sha256:…``.

        Blocking (podman, skopeo): callers on the event loop run it in a thread.
        """
        s = self.settings
        repository = repository_of(image)
        if not allowed(repository, s):
            raise InvalidRequest(
                f"{field}: image {image!r} comes from {registry_of(repository)}, which is not "
                f"in images.approved_registries ({', '.join(s.approved_registries)}): use an "
                "image from one of them (the operator may approve another registry)"
            )
        if s.trust == "any" and not s.signed_by:
            return image
        repository, digest = self.images.resolve(image)
        if s.trust == "catalog" and not any(not v.deprecated for v in self.store.by_digest(digest)):
            raise InvalidRequest(
                f"{field}: image {image!r} ({digest}) is not the image of a catalogued service "
                "version, and this server runs only those (images.trust = 'catalog'): run a "
                "service by name (`toolship service ls`), or have a maintainer register the "
                f"image first (`toolship service add {image}`)"
            )
        if s.signed_by:
            key = (repository, digest)
            if key not in self._verified:
                if len(self._verified) >= _REMEMBERED:
                    self._verified.clear()
                self._verified[key] = self.images.verify(repository, digest)
        return f"{repository}@{digest}"
