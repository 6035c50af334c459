"""SBOMs in SQL: one row per manifest digest, its components indexed beside it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, bindparam, delete, func, insert, select

from toolship.db.schema import attempt_images, components, sboms, tasks
from toolship.errors import NotFound
from toolship.supply.images import ImageUse
from toolship.supply.purls import Component
from toolship.supply.sboms import FORMATS, SbomInfo, StoredSbom

__all__ = ["SbomStore"]


def _missing(digest: str) -> str:
    return f"no SBOM of {digest} is stored: make it with `toolship sbom IMAGE` (POST /api/v1/sboms)"


# Asked after every task (built once: building it cost more than running it).
_UNMADE = (
    select(attempt_images.c.image, attempt_images.c.digest, attempt_images.c.image_id)
    .join(tasks, tasks.c.seq == attempt_images.c.task_seq)
    .where(tasks.c.id == bindparam("b_id"), attempt_images.c.digest != "")
    .where(~select(sboms.c.digest).where(sboms.c.digest == attempt_images.c.digest).exists())
)


class SbomStore:
    """The SBOM of each digest, and the packages it lists (what ``audit`` searches).

    An SBOM is saved with its components in one transaction, replacing what the digest
    had (a record of an earlier failure, made again on request).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, sbom: StoredSbom, parts: Sequence[Component] = ()) -> None:
        row = {
            "digest": sbom.digest,
            "image": sbom.image,
            "image_id": sbom.image_id,
            "made": sbom.made,
            "tool": sbom.tool,
            "error": sbom.error,
            "cyclonedx": sbom.cyclonedx,
            "cyclonedx14": sbom.cyclonedx14,
            "spdx": sbom.spdx,
        }
        listed = [
            {"digest": sbom.digest, "type": c.type, "namespace": c.namespace, "name": c.name,
             "version": c.version, "purl": c.purl}
            for c in parts
        ]  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(delete(components).where(components.c.digest == sbom.digest))
            conn.execute(delete(sboms).where(sboms.c.digest == sbom.digest))
            conn.execute(insert(sboms).values(**row))
            if listed:
                conn.execute(insert(components), listed)

    def get(self, digest: str) -> StoredSbom:
        with self.engine.connect() as conn:
            row = conn.execute(select(sboms).where(sboms.c.digest == digest)).first()
        if row is None:
            raise NotFound(_missing(digest))
        return StoredSbom(**row._asdict())

    def has(self, digest: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(select(sboms.c.digest).where(sboms.c.digest == digest)).first()
        return found is not None

    def info(self, digest: str) -> SbomInfo:
        """What is stored for ``digest``, without its documents."""
        count = (
            select(func.count())
            .select_from(components)
            .where(components.c.digest == sboms.c.digest)
            .scalar_subquery()
        )
        query = select(
            sboms.c.digest,
            sboms.c.image,
            sboms.c.image_id,
            sboms.c.made,
            sboms.c.tool,
            sboms.c.error,
            sboms.c.cyclonedx.is_not(None).label("cyclonedx"),
            sboms.c.cyclonedx14.is_not(None).label("cyclonedx14"),
            sboms.c.spdx.is_not(None).label("spdx"),
            count.label("components"),
        ).where(sboms.c.digest == digest)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(_missing(digest))
        held = (row.cyclonedx, row.cyclonedx14, row.spdx)
        return SbomInfo(
            digest=row.digest,
            image=row.image,
            image_id=row.image_id,
            made=row.made,
            tool=row.tool,
            error=row.error,
            formats=[name for name, there in zip(FORMATS, held, strict=True) if there],
            components=row.components,
        )

    def components(self, digest: str) -> list[Component]:
        query = (
            select(components.c.type, components.c.namespace, components.c.name,
                   components.c.version, components.c.purl)
            .where(components.c.digest == digest)
            .order_by(components.c.type, components.c.namespace, components.c.name)
        )  # fmt: skip
        with self.engine.connect() as conn:
            return [Component(*r) for r in conn.execute(query)]

    def unmade(self, task_id: str) -> list[ImageUse]:
        """The images a task's attempts ran whose digest has no SBOM row yet, once each."""
        with self.engine.connect() as conn:
            rows = conn.execute(_UNMADE, {"b_id": task_id}).all()
        found: dict[str, ImageUse] = {}
        for image, digest, image_id in rows:
            found.setdefault(digest, ImageUse(0, image, digest, image_id))
        return list(found.values())
