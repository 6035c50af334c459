"""Which image each executor of an attempt ran, as the attempt's TES metadata records it.

The worker writes, per executor ``i`` of a container runtime, ``toolship.image.{i}``
(the reference as run), ``toolship.image_digest.{i}`` (the manifest's ``sha256:…``)
and ``toolship.image_id.{i}`` (the image id, the config's ``sha256:…``).  Everything
else reads them through :func:`image_uses`, never by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ImageUse", "image_metadata", "image_uses", "pinned"]

_IMAGE, _DIGEST, _ID = "toolship.image.", "toolship.image_digest.", "toolship.image_id."


@dataclass(frozen=True, slots=True)
class ImageUse:
    executor: int
    image: str  # the reference as the task named it
    digest: str  # manifest sha256:… ("" when the runtime could not say)
    image_id: str = ""  # config sha256:… ("" when unknown)

    @property
    def repository(self) -> str:
        """The reference without its tag or digest: ``localhost/tool``, ``host:5000/a/b``."""
        name = self.image.partition("@")[0]
        head, _, last = name.rpartition("/")
        return f"{head}/{last.partition(':')[0]}" if head else last.partition(":")[0]

    @property
    def pinned(self) -> str:
        """What runs exactly this image again: ``repository@digest`` (the reference
        itself when the digest is unknown)."""
        return f"{self.repository}@{self.digest}" if self.digest else self.image


def pinned(image: str) -> str | None:
    """The digest a reference pins (``…@sha256:…``), or None."""
    _, at, digest = image.partition("@")
    return digest if at and digest.startswith("sha256:") else None


def image_metadata(use: ImageUse) -> dict[str, str]:
    """The metadata entries recording ``use`` (what the worker adds)."""
    i = use.executor
    found = {f"{_IMAGE}{i}": use.image, f"{_DIGEST}{i}": use.digest}
    if use.image_id:
        found[f"{_ID}{i}"] = use.image_id
    return found


def image_uses(metadata: Mapping[str, str] | None) -> list[ImageUse]:
    """The images an attempt recorded, by executor (none for the process runtime)."""
    if not metadata:
        return []
    uses = []
    for key, image in metadata.items():
        if not key.startswith(_IMAGE):
            continue
        index = key.removeprefix(_IMAGE)
        if not index.isdigit():
            continue
        uses.append(
            ImageUse(
                executor=int(index),
                image=image,
                digest=metadata.get(f"{_DIGEST}{index}", ""),
                image_id=metadata.get(f"{_ID}{index}", ""),
            )
        )
    return sorted(uses, key=lambda u: u.executor)
