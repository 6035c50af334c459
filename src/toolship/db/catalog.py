"""The services catalog in SQL: immutable versions, newest first."""

from __future__ import annotations

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from toolship.db.schema import service_versions as sv
from toolship.errors import Conflict, NotFound
from toolship.services import ServiceSummary, ServiceVersion

__all__ = ["CatalogStore"]

_DOCS = select(sv.c.doc, sv.c.deprecated).order_by(sv.c.seq.desc())


def _version(doc: str, deprecated: bool) -> ServiceVersion:
    version = ServiceVersion.model_validate_json(doc)
    version.deprecated = bool(deprecated)
    return version


class CatalogStore:
    """Service versions: written once, never changed but for being deprecated.

    A version's document is kept whole, as it was registered: which image (by
    digest), which ports, which labels.  Tasks already made from it name its image
    and carry its tag, so deprecating it only hides it from lists and new runs.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, version: ServiceVersion, containerfile: str | None = None) -> ServiceVersion:
        """Store a new version; a (name, version) that exists is a 409."""
        row = {
            "name": version.name,
            "version": version.version,
            "repository": version.repository,
            "digest": version.digest,
            "deprecated": version.deprecated,
            "doc": version.model_dump_json(exclude_none=True),
            "containerfile": containerfile,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(sv).values(**row))
        except IntegrityError:
            held = self.get(version.name, version.version)
            raise Conflict(
                f"service {version.name!r} already has a version {version.version!r} "
                f"(image {held.image}); a version never changes: give the new image "
                "another version (--version, or its version label)"
            ) from None
        return version

    def get(self, name: str, version: str | None = None) -> ServiceVersion:
        """One version; without ``version`` the newest that is not deprecated."""
        query = _DOCS.where(sv.c.name == name)
        if version is None:
            query = query.where(sv.c.deprecated.is_(False))
        else:
            query = query.where(sv.c.version == version)
        with self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        if row is None:
            raise NotFound(self._missing(name, version))
        return _version(row.doc, row.deprecated)

    def _missing(self, name: str, version: str | None) -> str:
        versions = [v.version for v in self.versions(name)]
        if not versions:
            known = sorted({s.name for s in self.summaries()})
            listed = ", ".join(repr(k) for k in known[:20]) or "none yet"
            return (
                f"no service named {name!r} (services: {listed}); `toolship service ls` lists them"
            )
        if version is None:
            return (
                f"every version of service {name!r} is deprecated ({', '.join(versions)}); "
                "name one with NAME@VERSION to inspect it"
            )
        return f"service {name!r} has no version {version!r} (versions: {', '.join(versions)})"

    def versions(self, name: str) -> list[ServiceVersion]:
        """Every version of ``name``, newest first, deprecated ones included."""
        with self.engine.connect() as conn:
            rows = conn.execute(_DOCS.where(sv.c.name == name)).all()
        return [_version(r.doc, r.deprecated) for r in rows]

    def all(self, *, include_deprecated: bool = True) -> list[ServiceVersion]:
        """Every version of every service, newest first."""
        query = _DOCS
        if not include_deprecated:
            query = query.where(sv.c.deprecated.is_(False))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_version(r.doc, r.deprecated) for r in rows]

    def summaries(self, query: str | None = None) -> list[ServiceSummary]:
        """One line per service that has a version not deprecated, by name.

        ``query`` matches the name or the description, case-insensitively.
        """
        latest: dict[str, ServiceVersion] = {}
        counts: dict[str, int] = {}
        for v in self.all(include_deprecated=False):
            latest.setdefault(v.name, v)
            counts[v.name] = counts.get(v.name, 0) + 1
        needle = (query or "").casefold()
        return [
            ServiceSummary(
                name=v.name,
                description=v.description,
                latest=v.version,
                digest=v.digest,
                versions=counts[v.name],
            )
            for name, v in sorted(latest.items())
            if needle in name.casefold() or needle in v.description.casefold()
        ]

    def by_digest(self, digest: str) -> list[ServiceVersion]:
        """The versions that pin this manifest digest (any service), newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(_DOCS.where(sv.c.digest == digest)).all()
        return [_version(r.doc, r.deprecated) for r in rows]

    def containerfile(self, name: str, version: str) -> str | None:
        """The Containerfile ``name@version`` was built from (None: registered, not built)."""
        self.get(name, version)
        query = select(sv.c.containerfile).where(sv.c.name == name, sv.c.version == version)
        with self.engine.connect() as conn:
            text: str | None = conn.execute(query).scalar()
        return text

    def deprecate(self, name: str, version: str) -> ServiceVersion:
        """Hide a version from lists and new runs; tasks made from it keep it."""
        self.get(name, version)
        with self.engine.begin() as conn:
            conn.execute(
                update(sv).where(sv.c.name == name, sv.c.version == version).values(deprecated=True)
            )
        return self.get(name, version)
