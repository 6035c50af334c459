"""Batches (sweeps, maps, task lists) at /api/v1/batches: create in bulk, watch, cancel, report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from toolship.api import access
from toolship.api.events import record
from toolship.api.state import app_state
from toolship.db import BatchRow, Store
from toolship.engine.accounting import member_usage, scaling, scaling_key, summarize
from toolship.identity import Role
from toolship.models import (
    BatchInfo,
    BatchList,
    BatchMap,
    BatchReport,
    BatchRequest,
    CancelBatchResponse,
    CreateBatchResponse,
    ErrorResponse,
    Prices,
    Scaling,
)
from toolship.states import FINAL_STATES, TaskState

__all__ = ["batch_state", "cancel", "newest", "report_of", "router"]

router = APIRouter(prefix="/api/v1", tags=["toolship"])
S = TaskState


def batch_state(counts: dict[TaskState, int], size: int) -> TaskState:
    """One state for the whole batch: running while any member is, else the worst ending."""
    if any(counts.get(s) for s in (S.INITIALIZING, S.RUNNING)):
        return S.RUNNING
    if counts.get(S.QUEUED):
        return S.RUNNING if sum(counts.get(s, 0) for s in FINAL_STATES) else S.QUEUED
    for state in (S.SYSTEM_ERROR, S.EXECUTOR_ERROR, S.CANCELED, S.PREEMPTED):
        if counts.get(state):
            return state
    return S.COMPLETE if counts.get(S.COMPLETE) == size else S.UNKNOWN


def reply(model: BaseModel) -> JSONResponse:
    """A reply model as JSON: every field the route set, nothing it left out."""
    return JSONResponse(model.model_dump(mode="json", exclude_unset=True))


def _summary(store: Store, batch: BatchRow) -> BatchInfo:
    counts = store.batch_counts(batch.id)
    mapped = {k: batch.spec[k] for k in ("over", "chunk", "to", "objects") if k in batch.spec}
    return BatchInfo(
        id=batch.id,
        name=batch.name,
        kind=batch.kind,
        creation_time=batch.creation_time,
        size=batch.size,
        state=batch_state(counts, batch.size),
        counts=dict(sorted(counts.items())),
        max_parallel=batch.max_parallel,
        priority=batch.priority,
        timeout=batch.spec.get("timeout"),
        map=BatchMap.model_validate(mapped) if mapped else None,
    )


@router.post(
    "/batches",
    operation_id="CreateBatch",
    response_model=CreateBatchResponse,
    responses={404: {"model": ErrorResponse, "description": "The service it names does not exist"}},
)
async def create_batch(request: Request, batch: Annotated[BatchRequest, Body()]) -> JSONResponse:
    """Create every member of a sweep, map or task list in one transaction."""
    owner = access.require(request, Role.USER, "creating batches")
    batch_id, task_ids = await app_state(request).engine.create_batch(batch, owner)
    record(request, "batch.create", batch_id, f"{len(task_ids)} tasks")
    return JSONResponse({"id": batch_id, "task_ids": task_ids})


@router.get("/batches", operation_id="ListBatches")
async def list_batches(
    request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> JSONResponse:
    """The newest batches first, each with its members' counts by state."""
    return reply(BatchList(batches=newest(request, limit)))


def newest(request: Request, limit: int) -> list[BatchInfo]:
    """The caller's visible batches, newest first (the web UI's list too)."""
    store = app_state(request).store
    return [_summary(store, b) for b in store.list_batches(limit, owner=access.reader(request))]


@router.post("/batches/{id}:cancel", operation_id="CancelBatch")
async def cancel_batch(request: Request, id: str) -> JSONResponse:
    """Cancel every member that has not finished."""
    return reply(CancelBatchResponse(id=id, canceled=await cancel(request, id)))


async def cancel(request: Request, id: str) -> int:
    """Cancel batch ``id`` as the caller (the web UI's button too): how many were canceled."""
    access.require(request, Role.USER, "canceling batches")
    st = app_state(request)
    access.check_batch(request, st.store.get_batch(id))
    count = await st.engine.cancel_batch(id)
    record(request, "batch.cancel", id, f"{count} tasks canceled")
    return count


@router.get("/batches/{id}", operation_id="GetBatch")
async def get_batch(request: Request, id: str) -> JSONResponse:
    store = app_state(request).store
    return reply(_summary(store, access.check_batch(request, store.get_batch(id))))


@router.get("/batches/{id}/report", operation_id="BatchReport")
async def batch_report(request: Request, id: str) -> JSONResponse:
    """Per member wall time, CPU seconds, peak memory and cost; totals; scaling of a sweep."""
    return reply(report_of(request, id))


def report_of(request: Request, id: str) -> BatchReport:
    """Batch ``id``'s report, if the caller may see it (the web UI's batch page too)."""
    st = app_state(request)
    batch = access.check_batch(request, st.store.get_batch(id))
    rows = st.store.batch_members(id)
    params: list[dict[str, str]] = batch.spec.get("params", [])
    members = [
        member_usage(r, params[i] if i < len(params) else {}, st.settings.prices)
        for i, r in enumerate(rows)
    ]
    key = scaling_key(members)
    prices = st.settings.prices
    return BatchReport(
        batch=_summary(st.store, batch),
        currency=prices.currency,
        prices=Prices.model_validate(prices.model_dump()),
        totals=summarize(members),
        members=members,
        scaling=Scaling(parameter=key, points=scaling(members, key)) if key else None,
    )
