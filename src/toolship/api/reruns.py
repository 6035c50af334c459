"""Exact reruns at /api/v1/tasks/{id}/rerun, and a rerun's outputs checked at .../verify."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request

from toolship.api import access
from toolship.api.events import audit
from toolship.api.state import app_state
from toolship.errors import InvalidRequest
from toolship.identity import Role
from toolship.models import ErrorResponse
from toolship.provenance.rerun import rerun_task, verification
from toolship.supply.reruns import RERUN_OF, RerunInfo, RerunRequest, Verification

__all__ = ["rerun_of", "router"]

router = APIRouter(prefix="/api/v1", tags=["toolship"])


@router.post(
    "/tasks/{id}/rerun",
    operation_id="RerunTask",
    response_model=RerunInfo,
    responses={
        409: {
            "model": ErrorResponse,
            "description": "The task has not ended, or recorded no digest or input sha256",
        }
    },
)
async def rerun(
    request: Request, id: str, body: Annotated[RerunRequest | None, Body()] = None
) -> RerunInfo:
    """A new task that runs the recorded image digests on the original's input bytes."""
    return await rerun_of(request, id, body or RerunRequest())


async def rerun_of(request: Request, task_id: str, body: RerunRequest) -> RerunInfo:
    """Create the rerun of a task the request may see (the web UI's button too)."""
    owner = access.require(request, Role.USER, "rerunning tasks")
    original = await access.visible_task(request, task_id)
    task, places, checked = rerun_task(original, body)
    event = audit(request, "task.create", f"rerun of {task_id}")
    new = await app_state(request).engine.create(task, owner, event)
    return RerunInfo(id=new, rerun_of=task_id, outputs=places, inputs_checked=checked)


@router.get(
    "/tasks/{id}/verify",
    operation_id="VerifyRerun",
    response_model=Verification,
    responses={409: {"model": ErrorResponse, "description": "The task has not ended"}},
)
async def verify(
    request: Request, id: str, against: Annotated[str | None, Query()] = None
) -> Verification:
    """The task's output files against ``against``'s (default: the task it reruns)."""
    row = await access.visible_task(request, id)
    original_id = against or (row.spec.get("tags") or {}).get(RERUN_OF)
    if not original_id:
        raise InvalidRequest(
            f"task {id} is not a rerun (it has no {RERUN_OF} tag): name the task to compare "
            "it with (?against=TASK_ID)"
        )
    original = await access.visible_task(request, original_id)
    return verification(row, original)
