"""Routes for remote workers (``toolship worker`` on a compute node), one task each.

A worker proves which task it runs with that task's own token (an HMAC of the
task id under the server secret, see :func:`toolship.secrets.worker_token`):
it can read its job and report its progress, nothing else.  These routes are
not part of the public API.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from toolship.api.state import app_state
from toolship.compute import RemoteAttempt
from toolship.errors import Conflict, Unauthorized
from toolship.records import ReportAnswer, WorkerReport
from toolship.secrets import worker_token

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/worker", include_in_schema=False)


def _attempt(request: Request, task_id: str, number: int | None) -> RemoteAttempt:
    backend = app_state(request).engine.backend
    secret = backend.worker_secret
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if (
        not secret
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(given.strip().encode(), worker_token(secret, task_id).encode())
    ):
        raise Unauthorized("not a worker token for this task")
    attempt = backend.remote_attempt(task_id)
    if attempt is None:
        raise Conflict(f"task {task_id} has no attempt in flight on this server; stop")
    if number is not None and number != attempt.number:
        # Slurm can lose a job's record (slurmctld restarted) while its worker runs on,
        # and give the next attempt's job the same id: only the attempt tells them apart.
        raise Conflict(
            f"this worker runs attempt {number} of task {task_id}, which is over: the "
            f"task now runs attempt {attempt.number}; stop"
        )
    return attempt


@router.get("/tasks/{task_id}")
async def get_job(request: Request, task_id: str, attempt: int | None = None) -> JSONResponse:
    """Everything the worker needs to run the attempt (``attempt``: the one it was sent for)."""
    job = _attempt(request, task_id, attempt).worker_job()
    return JSONResponse(job.model_dump(mode="json", exclude_none=True))


@router.post("/tasks/{task_id}/report")
async def report(request: Request, task_id: str, body: WorkerReport) -> JSONResponse:
    """Progress or an end; ``ok: false`` or ``cancel: true`` tell the worker to stop."""
    attempt = _attempt(request, task_id, body.attempt_number)
    ok = await attempt.update(body.state, body.attempt, body.runtime)
    answer = ReportAnswer(ok=ok, cancel=attempt.cancelled.is_set())
    return JSONResponse(answer.model_dump(mode="json"))
