"""Provenance at /api/v1/tasks/{id}/provenance (the record, JSON) and
/api/v1/tasks/{id}/crate, /api/v1/batches/{id}/crate (Process Run Crates, zip)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from toolship.api import access
from toolship.api.state import app_state
from toolship.db import Store, TaskRow
from toolship.db.sboms import SbomStore
from toolship.errors import NotFound
from toolship.provenance.crate import crate_of, crate_zip
from toolship.provenance.record import provenance_of
from toolship.supply.record import Provenance, SbomRef

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["toolship"])
ZIP = "application/zip"
License = Annotated[
    str | None,
    Query(description="the crate's license, a URL such as https://spdx.org/licenses/CC-BY-4.0"),
]


class _Sboms:
    """What the records and crates say of each image's SBOM, read once per digest."""

    def __init__(self, store: Store) -> None:
        self.sboms = SbomStore(store.engine)
        self.refs: dict[str, SbomRef | None] = {}

    def ref(self, digest: str) -> SbomRef | None:
        if digest not in self.refs:
            try:
                info = self.sboms.info(digest)
            except NotFound:
                self.refs[digest] = None
            else:
                self.refs[digest] = SbomRef(
                    digest=digest, url=f"/api/v1/sboms/{digest}", tool=info.tool, error=info.error
                )
        return self.refs[digest]

    def text(self, digest: str) -> str | None:
        try:
            return self.sboms.get(digest).cyclonedx
        except NotFound:
            return None


def _records(store: Store, rows: list[TaskRow]) -> list[Provenance]:
    sboms = _Sboms(store)
    return [provenance_of(row, sboms.ref) for row in rows]


def _zip(
    store: Store, records: list[Provenance], name: str, description: str, license: str | None
) -> bytes:
    crate = crate_of(
        records, name=name, description=description, license=license, sboms=_Sboms(store).text
    )
    return crate_zip(crate)


def _attachment(body: bytes, filename: str) -> Response:
    return Response(
        body, media_type=ZIP, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.get("/tasks/{task_id}/provenance", operation_id="GetProvenance", response_model=Provenance)
async def get_provenance(request: Request, task_id: str) -> JSONResponse:
    """How the task's results were made: each attempt's images by digest, commands,
    environment, times, exit codes, and its inputs and outputs with their sha256."""
    store = app_state(request).store
    row = await access.visible_task(request, task_id)
    (record,) = await anyio.to_thread.run_sync(lambda: _records(store, [row]))
    return JSONResponse(record.model_dump(mode="json", exclude_none=True))


_ZIP: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {}}, "description": "The crate, zipped"}
}


@router.get(
    "/tasks/{task_id}/crate", operation_id="GetTaskCrate", response_class=Response, responses=_ZIP
)
async def get_task_crate(request: Request, task_id: str, license: License = None) -> Response:
    """The task as a Process Run Crate (RO-Crate 1.1), zipped."""
    store = app_state(request).store
    row = await access.visible_task(request, task_id)

    def build() -> bytes:
        records = _records(store, [row])
        return _zip(store, records, f"toolship task {task_id}", _about(records), license)

    return _attachment(await anyio.to_thread.run_sync(build), f"{task_id}.crate.zip")


@router.get(
    "/batches/{batch_id}/crate",
    operation_id="GetBatchCrate",
    response_class=Response,
    responses=_ZIP,
)
async def get_batch_crate(request: Request, batch_id: str, license: License = None) -> Response:
    """Every member of the batch in one Process Run Crate, zipped."""
    store = app_state(request).store

    def build() -> bytes:
        batch = access.check_batch(request, store.get_batch(batch_id))
        records = _records(store, store.batch_members(batch_id))
        title = f"toolship batch {batch.name or batch_id}"
        return _zip(store, records, title, f"{len(records)} tasks of batch {batch_id}", license)

    return _attachment(await anyio.to_thread.run_sync(build), f"{batch_id}.crate.zip")


def _about(records: list[Provenance]) -> str:
    record = records[0]
    return record.description or f"the run of toolship task {record.name or record.id}"
