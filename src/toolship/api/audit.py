"""Which results used a package (/api/v1/audit), OSV advisories (/api/v1/advisories) and
the stored images they affect (/api/v1/vulns)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from toolship.api import access
from toolship.api.state import app_state
from toolship.db.audit import AuditStore
from toolship.db.store import Store
from toolship.errors import InvalidRequest
from toolship.identity import Role
from toolship.models import ErrorResponse
from toolship.supply.audit import AdvisoryImport, AdvisoryList, AuditReport, VulnReport
from toolship.supply.osv import read_records
from toolship.supply.purls import parse_query

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["supply chain"])


def _reply(model: BaseModel) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"))


def _store(request: Request) -> AuditStore:
    return AuditStore(app_state(request).store.engine)


def _seen(store: Store, reader: str | None, task_ids: list[str]) -> set[str]:
    """Those of ``task_ids`` that ``reader`` may see (None: all of them)."""
    if reader is None:
        return set(task_ids)
    owners = store.owners(task_ids)
    return {t for t in task_ids if owners.get(t) == reader}


def _only_seen(report: AuditReport, seen: set[str]) -> AuditReport:
    """The report without the attempts of tasks the caller may not see (nor their counts)."""
    report.tasks = [t for t in report.tasks if t.id in seen]
    for image in report.images:
        image.tasks = sum(image.digest in t.digests for t in report.tasks)
    report.batches = sorted({t.batch_id for t in report.tasks if t.batch_id})
    return report


@router.get("/audit", operation_id="Audit", response_model=AuditReport)
async def audit(
    request: Request,
    q: Annotated[
        str,
        Query(
            description="A package: pkg:deb/debian/openssl@3.0.11, openssl@3.0.11, numpy, "
            "numpy@<1.26 (a Debian version without revision matches its revisions)"
        ),
    ],
) -> JSONResponse:
    """Every image whose SBOM holds the package, and every attempt (task, batch, service,
    outputs with their sha256) that ran one of them."""
    query = parse_query(q)
    store = _store(request)
    started = time.perf_counter()
    reader = access.reader(request)
    tasks = app_state(request).store

    def work() -> AuditReport:
        found = store.audit(query, q)
        return _only_seen(found, _seen(tasks, reader, [t.id for t in found.tasks]))

    report = await asyncio.to_thread(work)
    report.seconds = round(time.perf_counter() - started, 4)
    return _reply(report)


@router.post(
    "/advisories",
    operation_id="ImportAdvisories",
    response_model=AdvisoryImport,
    responses={400: {"model": ErrorResponse, "description": "No OSV records in the body"}},
)
async def import_advisories(request: Request) -> JSONResponse:
    """Import OSV records: the body is OSV's ``all.zip`` (or any zip of OSV JSON files),
    one OSV record, or a JSON list of records.  No network is used."""
    access.require(request, Role.MAINTAINER, "importing advisories")
    data = await request.body()
    if not data:
        raise InvalidRequest(
            "no advisories in the request body: send an OSV all.zip, an OSV JSON record "
            "or a list of them (toolship advisories import FILE)"
        )
    store = _store(request)

    def work() -> AdvisoryImport:
        try:
            return store.import_advisories(read_records(data, "upload"))
        except ValueError as exc:
            raise InvalidRequest(
                f"{exc}: send OSV records (a zip of OSV .json files, a record or a list)"
            ) from None

    return _reply(await asyncio.to_thread(work))


@router.get("/advisories", operation_id="ListAdvisories", response_model=AdvisoryList)
async def list_advisories(
    request: Request,
    package: Annotated[str | None, Query(description="Only this package's")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> JSONResponse:
    """The imported advisories, one line per (advisory, affected package)."""
    store = _store(request)
    return _reply(await asyncio.to_thread(store.advisories, package, limit))


@router.get(
    "/vulns",
    operation_id="Vulns",
    response_model=VulnReport,
    responses={404: {"model": ErrorResponse, "description": "No such task or service"}},
)
async def vulns(
    request: Request,
    task: Annotated[str | None, Query(description="Only the images this task ran")] = None,
    service: Annotated[str | None, Query(description="NAME or NAME@VERSION")] = None,
    image: Annotated[
        str | None, Query(description="A reference as tasks ran it, or a digest")
    ] = None,
) -> JSONResponse:
    """The imported advisories that affect packages of stored SBOMs: per advisory and
    image, the fixed versions, the images' services and the tasks that ran them."""
    if sum(x is not None for x in (task, service, image)) > 1:
        raise InvalidRequest("name one of task, service or image (or none: every image)")
    store = _store(request)
    reader = access.reader(request)
    if task is not None:
        await access.check_task(request, task)
    tasks = app_state(request).store

    def work() -> VulnReport:
        report = store.vulns(task=task, service=service, image=image)
        ran = sorted({t for v in report.vulns for t in v.tasks})
        seen = _seen(tasks, reader, ran)
        for v in report.vulns:
            v.tasks = [t for t in v.tasks if t in seen]
        return report

    return _reply(await asyncio.to_thread(work))
