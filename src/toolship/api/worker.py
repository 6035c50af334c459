"""Routes for remote workers (``toolship worker`` on a compute node), one task each.

A worker proves which task it runs with that task's own token (an HMAC of the
task id under the server secret, see :func:`toolship.secrets.worker_token`):
it can read its job and report its progress, nothing else.  These routes are
not part of the public API.

With several replicas a worker may reach any of them (``slurm.server_url`` is the load
balancer's): a replica that does not run the attempt forwards the request to the one
that does (:mod:`toolship.api.forward`), or, while that one is down and not yet
adopted, answers 503, which the worker retries.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from toolship.api.forward import FORWARDED_BY, forward
from toolship.api.state import app_state
from toolship.compute import RemoteAttempt
from toolship.errors import Conflict, ServerUnavailable, Unauthorized
from toolship.records import ReportAnswer, WorkerReport
from toolship.secrets import worker_token

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/worker", include_in_schema=False)


def _check_token(request: Request, task_id: str) -> None:
    secret = app_state(request).engine.backend.worker_secret
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if (
        not secret
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(given.strip().encode(), worker_token(secret, task_id).encode())
    ):
        raise Unauthorized("not a worker token for this task")


def _current(attempt: RemoteAttempt, task_id: str, number: int | None) -> RemoteAttempt:
    if number is not None and number != attempt.number:
        # Slurm can lose a job's record (slurmctld restarted) while its worker runs on,
        # and give the next attempt's job the same id: only the attempt tells them apart.
        raise Conflict(
            f"this worker runs attempt {number} of task {task_id}, which is over: the "
            f"task now runs attempt {attempt.number}; stop"
        )
    return attempt


async def _answer(
    request: Request,
    task_id: str,
    number: int | None,
    act: Callable[[RemoteAttempt], Awaitable[Response]],
) -> Response:
    """``act`` on the task's attempt when it runs here; else the answer of the replica
    that runs it."""
    _check_token(request, task_id)
    state = app_state(request)
    attempt = state.engine.backend.remote_attempt(task_id)
    if attempt is not None:
        return await act(_current(attempt, task_id, number))
    replicas = state.engine.replicas
    elsewhere = await asyncio.to_thread(replicas.running_elsewhere, task_id)
    if elsewhere is None:
        if replicas.moving:  # it may be one of the tasks being adopted right now
            raise ServerUnavailable(
                f"replica {replicas.name} is adopting tasks of a replica that stopped "
                "answering; try again in a moment"
            )
        raise Conflict(f"task {task_id} has no attempt in flight on this server; stop")
    name, row = elsewhere
    if FORWARDED_BY in request.headers:  # it moved on meanwhile: the worker asks again
        raise ServerUnavailable(
            f"task {task_id} moved to replica {name} while replica "
            f"{request.headers[FORWARDED_BY]} forwarded this request here; try again"
        )
    adopt_after = state.settings.server.adopt_after_s
    if row is None or row.stopped is not None:
        raise ServerUnavailable(
            f"replica {name}, which runs task {task_id}, is down; another replica adopts "
            f"its tasks once it has been silent for server.adopt_after_s ({adopt_after:g} "
            "s): try again"
        )
    if not row.url:
        raise ServerUnavailable(
            f"replica {name}, which runs task {task_id}, recorded no address to forward "
            "its worker's requests to (server.advertise_url; a replica started before "
            "migration 0010 has none): restart it under toolship serve"
        )
    return await forward(request, task_id, replicas.name, name, row.url, adopt_after)


@router.get("/tasks/{task_id}")
async def get_job(request: Request, task_id: str, attempt: int | None = None) -> Response:
    """Everything the worker needs to run the attempt (``attempt``: the one it was sent for)."""

    async def job(found: RemoteAttempt) -> Response:
        return JSONResponse(found.worker_job().model_dump(mode="json", exclude_none=True))

    return await _answer(request, task_id, attempt, job)


@router.post("/tasks/{task_id}/report")
async def report(request: Request, task_id: str, body: WorkerReport) -> Response:
    """Progress or an end; ``ok: false`` or ``cancel: true`` tell the worker to stop."""

    async def update(found: RemoteAttempt) -> Response:
        ok = await found.update(body.state, body.attempt, body.runtime)
        answer = ReportAnswer(ok=ok, cancel=found.cancelled.is_set())
        return JSONResponse(answer.model_dump(mode="json"))

    return await _answer(request, task_id, body.attempt_number, update)
