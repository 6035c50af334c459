"""Which tasks ran which packages: SBOM components → image digests → attempts → tasks;
OSV advisories and what of the stored images they affect.

``components`` (one row per package of every stored SBOM, by purl parts) narrows a
query to a handful of digests through its name index; ``attempt_images`` (indexed by
digest) then gives the attempts, and one join their tasks.  Versions are compared in
Python (:mod:`toolship.supply.purls`): each name has a few dozen rows at most.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, delete, func, insert, or_, select, tuple_

from toolship.db.schema import (
    advisories,
    attempt_images,
    components,
    sboms,
    service_versions,
    task_tags,
    tasks,
)
from toolship.errors import NotFound
from toolship.services import SERVICE_TAG
from toolship.supply.audit import (
    AdvisoryImport,
    AdvisoryInfo,
    AdvisoryList,
    AuditImage,
    AuditOutput,
    AuditReport,
    AuditTask,
    Vuln,
    VulnReport,
)
from toolship.supply.osv import Advisory, affected_by, parse_record
from toolship.supply.purls import Component, PackageQuery, upstream_name

__all__ = ["AuditStore"]

_CHUNK = 500


def _chunks(items: Sequence[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _outputs(logs: str, attempt: int) -> list[AuditOutput]:
    entries = json.loads(logs)
    if not isinstance(entries, list) or not 0 < attempt <= len(entries):
        return []
    entry = entries[attempt - 1]
    meta = entry.get("metadata") or {}
    return [
        AuditOutput(
            url=o.get("url", ""),
            path=o.get("path", ""),
            size_bytes=str(o.get("size_bytes", "")),
            sha256=meta.get(f"sha256:{o.get('path', '')}", ""),
        )
        for o in entry.get("outputs") or []
    ]


def _match(
    held: Sequence[tuple[str, Component]], docs: Iterable[Advisory]
) -> dict[tuple[str, str, str], Vuln]:
    """(advisory, digest, purl) → the vulnerability, for every affected component held."""
    by_package: dict[str, list[Advisory]] = defaultdict(list)
    for advisory in docs:
        for name in {x.package for x in advisory.affected}:
            by_package[name].append(advisory)
    found: dict[tuple[str, str, str], Vuln] = {}
    for digest, comp in held:
        source = upstream_name(comp)
        for advisory in by_package.get(comp.name, []) + by_package.get(source, []):
            for affected in advisory.affected:
                fixed = affected_by(affected, comp, source)
                if fixed is None:
                    continue
                key = (advisory.id, digest, comp.purl)
                held_vuln = found.get(key)
                if held_vuln is None:
                    found[key] = Vuln(
                        advisory=advisory.id,
                        summary=advisory.summary,
                        aliases=list(advisory.aliases),
                        ecosystem=affected.ecosystem,
                        package=comp.purl,
                        version=comp.version,
                        fixed=fixed,
                        digest=digest,
                    )
                else:
                    held_vuln.fixed = sorted(set(held_vuln.fixed) | set(fixed))
    return found


class AuditStore:
    """Reads the supply-chain tables (written by the store, the SBOM store and
    :meth:`import_advisories`) to answer audit and vulnerability questions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- audit --------------------------------------------------------------

    def components(self, query: PackageQuery) -> list[tuple[str, Component]]:
        """(digest, component) for every stored component that ``query`` matches."""
        c = components.c
        by_name: list[ColumnElement[bool]] = [c.name.in_(query.names)]
        if query.type in (None, "deb"):
            # A Debian binary package answers for its source (``upstream=`` in its purl).
            by_name += [
                and_(c.type == "deb", c.purl.like(f"%upstream={_like(n)}%", escape="\\"))
                for n in query.names
            ]
        conds = [or_(*by_name)]
        if query.type is not None:
            conds.append(c.type == query.type)
        if query.namespace is not None:
            conds.append(c.namespace == query.namespace)
        stmt = select(c.digest, c.type, c.namespace, c.name, c.version, c.purl).where(*conds)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        found = [
            (r.digest, Component(r.type, r.namespace, r.name, r.version, r.purl)) for r in rows
        ]
        return [(d, comp) for d, comp in found if query.matches(comp)]

    def audit(self, query: PackageQuery, text: str) -> AuditReport:
        """Every image holding a package ``query`` matches, and every attempt that ran one."""
        matched = self.components(query)
        packages: dict[str, list[str]] = defaultdict(list)
        for digest, comp in matched:
            packages[digest].append(comp.purl)
        digests = sorted(packages)
        if not digests:
            return AuditReport(query=text)
        ai, t = attempt_images.c, tasks.c
        attempts = (
            select(
                ai.task_seq, ai.attempt, ai.executor, ai.image, ai.digest,
                t.id, t.name, t.state, t.batch_id, t.logs,
            )
            .join(tasks, t.seq == ai.task_seq)
            .where(ai.digest.in_(digests))
            .order_by(ai.task_seq, ai.attempt, ai.executor)
        )  # fmt: skip
        tags = (
            select(task_tags.c.task_seq, task_tags.c.value)
            .join(attempt_images, ai.task_seq == task_tags.c.task_seq)
            .where(ai.digest.in_(digests), task_tags.c.key == SERVICE_TAG)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(attempts).all()
            service_of = {r.task_seq: r.value for r in conn.execute(tags)}
            made_from = self._sbom_images(conn, digests)
            services = self._services(conn, digests)
        found: dict[tuple[int, int], AuditTask] = {}
        counts: dict[str, set[tuple[int, int]]] = defaultdict(set)
        for r in rows:
            key = (r.task_seq, r.attempt)
            counts[r.digest].add(key)
            entry = found.get(key)
            if entry is None:
                entry = found[key] = AuditTask(
                    id=r.id,
                    name=r.name,
                    state=r.state,
                    attempt=r.attempt,
                    batch_id=r.batch_id,
                    service=service_of.get(r.task_seq),
                    outputs=_outputs(r.logs, r.attempt),
                )
            entry.executors.append(r.executor)
            if r.image not in entry.images:
                entry.images.append(r.image)
            if r.digest not in entry.digests:
                entry.digests.append(r.digest)
        images = [
            AuditImage(
                digest=d,
                image=made_from.get(d, ""),
                packages=sorted(set(packages[d])),
                services=services.get(d, []),
                tasks=len(counts[d]),
            )
            for d in digests
        ]
        batches = sorted({e.batch_id for e in found.values() if e.batch_id})
        return AuditReport(query=text, images=images, tasks=list(found.values()), batches=batches)

    @staticmethod
    def _sbom_images(conn: Any, digests: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in _chunks(digests):
            stmt = select(sboms.c.digest, sboms.c.image).where(sboms.c.digest.in_(chunk))
            out.update({r.digest: r.image for r in conn.execute(stmt)})
        return out

    @staticmethod
    def _services(conn: Any, digests: Sequence[str]) -> dict[str, list[str]]:
        sv = service_versions.c
        out: dict[str, list[str]] = defaultdict(list)
        for chunk in _chunks(digests):
            stmt = select(sv.digest, sv.name, sv.version).where(sv.digest.in_(chunk))
            for r in conn.execute(stmt.order_by(sv.seq)):
                out[r.digest].append(f"{r.name}@{r.version}")
        return out

    # --- advisories ---------------------------------------------------------

    def import_advisories(self, records: Iterable[tuple[str, Any]]) -> AdvisoryImport:
        """Store OSV records, one row per (advisory, affected package); a row already
        stored with the same or a newer ``modified`` is kept."""
        report = AdvisoryImport()
        rows: dict[tuple[str, str, str], dict[str, str]] = {}
        for where, doc in records:
            report.records += 1
            try:
                advisory = parse_record(doc, where)
            except ValueError as exc:
                report.skipped.append(str(exc))
                continue
            text = json.dumps(advisory.doc, separators=(",", ":"))
            for entry in advisory.affected:
                rows[(advisory.id, entry.ecosystem, entry.package)] = {
                    "id": advisory.id,
                    "ecosystem": entry.ecosystem,
                    "package": entry.package,
                    "modified": advisory.modified,
                    "doc": text,
                }
        a = advisories.c
        keys = list(rows)
        with self.engine.begin() as conn:
            held: dict[tuple[str, str, str], str] = {}
            for chunk in _chunks(keys):
                stmt = select(a.id, a.ecosystem, a.package, a.modified).where(
                    tuple_(a.id, a.ecosystem, a.package).in_(chunk)
                )
                held.update(
                    {(r.id, r.ecosystem, r.package): r.modified for r in conn.execute(stmt)}
                )
            fresh = [k for k in keys if k not in held or held[k] < rows[k]["modified"]]
            report.unchanged = len(keys) - len(fresh)
            stale = [k for k in fresh if k in held]
            for chunk in _chunks(stale):
                conn.execute(
                    delete(advisories).where(tuple_(a.id, a.ecosystem, a.package).in_(chunk))
                )
            if fresh:
                conn.execute(insert(advisories), [rows[k] for k in fresh])
        report.packages = len(fresh)
        return report

    def advisories(self, package: str | None = None, limit: int = 1000) -> AdvisoryList:
        a = advisories.c
        stmt = select(a.id, a.ecosystem, a.package, a.modified, a.doc)
        count = select(func.count()).select_from(advisories)
        if package:
            stmt, count = stmt.where(a.package == package), count.where(a.package == package)
        stmt = stmt.order_by(a.id, a.ecosystem, a.package).limit(limit)
        with self.engine.connect() as conn:
            total = int(conn.execute(count).scalar() or 0)
            rows = conn.execute(stmt).all()
        items = []
        for r in rows:
            doc = json.loads(r.doc)
            items.append(
                AdvisoryInfo(
                    id=r.id,
                    ecosystem=r.ecosystem,
                    package=r.package,
                    modified=r.modified,
                    summary=str(doc.get("summary") or "")[:300],
                    aliases=[str(x) for x in doc.get("aliases") or []],
                )
            )
        return AdvisoryList(advisories=items, total=total)

    # --- vulnerabilities ----------------------------------------------------

    def scope(
        self, *, task: str | None = None, service: str | None = None, image: str | None = None
    ) -> tuple[str, list[str], str | None]:
        """(what, digests in scope, the one task they are limited to)."""
        ai = attempt_images.c
        with self.engine.connect() as conn:
            if task is not None:
                seq = conn.execute(select(tasks.c.seq).where(tasks.c.id == task)).scalar()
                if seq is None:
                    raise NotFound(f"no task with id {task!r}")
                stmt = select(ai.digest).where(ai.task_seq == seq).distinct()
                return f"task {task}", sorted(conn.execute(stmt).scalars()), task
            if service is not None:
                name, _, version = service.partition("@")
                sv = service_versions.c
                stmt = select(sv.digest).where(sv.name == name)
                if version:
                    stmt = stmt.where(sv.version == version)
                found = sorted(set(conn.execute(stmt).scalars()))
                if not found:
                    raise NotFound(
                        f"no service {service!r}; `toolship service ls` lists the services"
                    )
                return f"service {service}", found, None
            if image is not None:
                stmt = select(ai.digest).where(or_(ai.image == image, ai.digest == image))
                known = select(sboms.c.digest).where(
                    or_(sboms.c.image == image, sboms.c.digest == image)
                )
                found = sorted(
                    set(conn.execute(stmt.distinct()).scalars())
                    | set(conn.execute(known).scalars())
                )
                if not found:
                    raise NotFound(
                        f"no task ran image {image!r} and no SBOM was made of it; "
                        "name it as tasks did (`toolship audit` shows references) or by digest"
                    )
                return f"image {image}", found, None
            ran = set(conn.execute(select(ai.digest).distinct()).scalars())
            made = set(conn.execute(select(sboms.c.digest)).scalars())
        return "all", sorted((ran | made) - {""}), None

    def vulns(
        self, *, task: str | None = None, service: str | None = None, image: str | None = None
    ) -> VulnReport:
        """Stored advisories against the components of the images in scope."""
        what, digests, only_task = self.scope(task=task, service=service, image=image)
        c, a = components.c, advisories.c
        with self.engine.connect() as conn:
            with_sbom: set[str] = set()
            for chunk in _chunks(digests):
                stmt = select(sboms.c.digest).where(
                    sboms.c.digest.in_(chunk), sboms.c.cyclonedx.is_not(None)
                )
                with_sbom.update(conn.execute(stmt).scalars())
            held: list[tuple[str, Component]] = []
            for chunk in _chunks(sorted(with_sbom)):
                stmt = select(c.digest, c.type, c.namespace, c.name, c.version, c.purl).where(
                    c.digest.in_(chunk)
                )
                held += [
                    (r.digest, Component(r.type, r.namespace, r.name, r.version, r.purl))
                    for r in conn.execute(stmt)
                ]
            names = sorted(
                {comp.name for _, comp in held} | {upstream_name(comp) for _, comp in held} - {""}
            )
            docs: dict[str, Advisory] = {}
            for chunk in _chunks(names):
                stmt = select(a.id, a.doc).where(a.package.in_(chunk))
                for r in conn.execute(stmt):
                    if r.id not in docs:
                        docs[r.id] = parse_record(json.loads(r.doc), r.id)
            total = int(conn.execute(select(func.count(func.distinct(a.id)))).scalar() or 0)
        found = _match(held, docs.values())
        self._fill(list(found.values()), only_task)
        vulns = sorted(found.values(), key=lambda v: (v.advisory, v.package, v.digest))
        return VulnReport(
            scope=what,
            digests=len(digests),
            without_sbom=[d for d in digests if d not in with_sbom],
            advisories=total,
            vulns=vulns,
        )

    def _fill(self, vulns: Sequence[Vuln], only_task: str | None) -> None:
        """Each vulnerability's images, services and tasks."""
        digests = sorted({v.digest for v in vulns})
        if not digests:
            return
        ai, t = attempt_images.c, tasks.c
        images: dict[str, set[str]] = defaultdict(set)
        task_ids: dict[str, list[str]] = defaultdict(list)
        with self.engine.connect() as conn:
            made_from = self._sbom_images(conn, digests)
            services = self._services(conn, digests)
            for chunk in _chunks(digests):
                stmt = (
                    select(ai.digest, ai.image, t.id, t.seq)
                    .join(tasks, t.seq == ai.task_seq)
                    .where(ai.digest.in_(chunk))
                    .order_by(t.seq)
                )
                if only_task is not None:
                    stmt = stmt.where(t.id == only_task)
                for r in conn.execute(stmt):
                    images[r.digest].add(r.image)
                    if r.id not in task_ids[r.digest][-1:]:
                        task_ids[r.digest].append(r.id)
        for v in vulns:
            v.images = sorted(
                images[v.digest] | ({made_from[v.digest]} if v.digest in made_from else set())
            )
            v.services = services.get(v.digest, [])
            v.tasks = list(dict.fromkeys(task_ids[v.digest]))
