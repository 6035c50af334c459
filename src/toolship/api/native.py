"""toolship's own routes under /api/v1: health, waiting, log streams, details, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from toolship.api.state import AppState, app_state
from toolship.api.views import render, resolved_resources
from toolship.db import TaskRow
from toolship.errors import InvalidRequest
from toolship.models import View
from toolship.states import is_final
from toolship.worker import taskfs
from toolship.worker.layout import AttemptLayout

__all__ = ["embedded_only", "public", "router"]

router = APIRouter(prefix="/api/v1", tags=["toolship"])
public = APIRouter(prefix="/api/v1", tags=["toolship"])
# Only on the CLI's own embedded server (always token-protected); not part of the public API.
embedded_only = APIRouter(prefix="/api/v1", include_in_schema=False)

_FOLLOW_POLL = 0.05
_CHUNK = 64 * 1024


@public.get("/health", operation_id="Health")
async def health() -> JSONResponse:
    """Cheap liveness check, no database access (also the benchmarks' baseline)."""
    return JSONResponse({"status": "ok"})


@router.get("/tasks/{id}/wait", operation_id="WaitTask")
async def wait_task(
    request: Request, id: str, timeout: Annotated[float, Query(ge=0, le=600)] = 30.0
) -> JSONResponse:
    """Answer when the task is final, or with its current state after ``timeout`` seconds."""
    state = await app_state(request).engine.wait(id, timeout)
    return JSONResponse({"id": id, "state": state.value, "final": is_final(state)})


@router.get("/tasks/{id}", operation_id="TaskDetails")
async def task_details(request: Request, id: str) -> JSONResponse:
    """The FULL TES task plus what only toolship knows (runtime, resources, directories)."""
    st = app_state(request)
    row = st.store.get(id)
    resources = resolved_resources(row)
    runtime_name = (resources.get("backend_parameters") or {}).get("runtime")
    rt = row.runtime
    body: dict[str, Any] = {
        "task": render(row, View.FULL),
        "runtime": runtime_name,
        "resources": resources,
        "isolated": runtime_name != "process",
        "attempt_dir": rt.attempt_dir,
        "executor": rt.executor,
        "phase": rt.phase,
        "running_executor_start": rt.exec_start if rt.pid else None,
        "staged": st.engine.staging_progress(id),
        # job id, state and nodes when the Slurm backend ran it
        "slurm": None if rt.slurm is None else rt.slurm.model_dump(exclude_none=True),
    }
    return JSONResponse(body)


@router.get(
    "/tasks/{id}/logs",
    operation_id="TaskLogs",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def task_logs(
    request: Request,
    id: str,
    stream: Literal["stdout", "stderr"] = "stdout",
    executor: Annotated[int | None, Query(ge=0)] = None,
    follow: bool = False,
    attempt: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> StreamingResponse:
    """The full stdout or stderr of the latest attempt (all executors in order, or one).

    ``attempt``: start with this attempt (1 = the first) instead of the latest; with
    ``follow``, every later attempt (a retry) follows in order.
    """
    st = app_state(request)
    row = st.store.get(id)
    count = len(row.spec["executors"])
    if executor is not None and not 0 <= executor < count:
        raise InvalidRequest(f"executor must be between 0 and {count - 1}")
    indexes = [executor] if executor is not None else list(range(count))
    return StreamingResponse(
        _log_chunks(st, id, indexes, stream, follow, attempt),
        media_type="text/plain; charset=utf-8",
    )


async def _log_chunks(
    st: AppState, task_id: str, indexes: list[int], stream: str, follow: bool, first: int | None
) -> AsyncIterator[bytes]:
    """The latest attempt's stream; following, also every attempt a retry starts later."""
    while True:
        row = st.store.get(task_id)
        base = row.runtime.attempt_dir
        if base is not None:
            break
        if not follow or is_final(row.state):
            return
        await asyncio.sleep(_FOLLOW_POLL)
    root, number = Path(base).parent, int(Path(base).name)
    if first is not None:
        number = min(first, number)
    while True:
        async for chunk in _attempt_chunks(st, task_id, str(root / str(number)), indexes, stream,
                                           follow):  # fmt: skip
            yield chunk
        if not follow:
            return
        while True:  # attempt directories are numbered; a retry makes the next one
            row = st.store.get(task_id)
            if len(row.logs) > number:
                number += 1
                break
            if is_final(row.state):
                return
            await asyncio.sleep(_FOLLOW_POLL)


async def _attempt_chunks(
    st: AppState, task_id: str, base: str, indexes: list[int], stream: str, follow: bool
) -> AsyncIterator[bytes]:
    """One attempt's captures, executor after executor (only the server's own files in logs/).

    Following, the task row is read once per poll and only while waiting for the
    executor being shown: a task with thousands of executors costs one row read, not
    one per executor and poll.
    """
    row = st.store.get(task_id)
    executors = row.spec["executors"]
    layout = AttemptLayout(base=Path(base))
    final, done = _progress(row, base)
    for index in indexes:
        ex = executors[index]
        out, err = layout.captures(index, ex.get("stdout"), ex.get("stderr"))
        path = out if stream == "stdout" else err
        offset = 0
        while True:
            finished = not follow or final or index < done
            while True:
                data = await asyncio.to_thread(_read_from, path, offset)
                if data:
                    offset += len(data)
                    yield data
                if len(data) < _CHUNK:
                    break
            if finished:
                break
            await asyncio.sleep(_FOLLOW_POLL)
            final, done = _progress(st.store.get(task_id), base)


def _progress(row: TaskRow, base: str) -> tuple[bool, int]:
    """(is the attempt over, how many of its executors have ended)."""
    final = is_final(row.state) or row.runtime.attempt_dir != base
    done = len(row.logs[-1].logs) if row.logs else 0
    return final, done


def _read_from(path: Path, offset: int) -> bytes:
    try:
        return taskfs.read_at(path, offset, _CHUNK)
    except taskfs.TaskPathError:  # only a process-runtime task could put one there
        return b""


@embedded_only.post("/server/shutdown", operation_id="Shutdown")
async def shutdown(request: Request) -> JSONResponse:
    """Stop the server; running executors keep running and are followed again on restart."""
    asyncio.get_running_loop().call_later(0.1, os.kill, os.getpid(), signal.SIGTERM)
    return JSONResponse({"status": "stopping"})
