"""toolship's own routes under /api/v1: health, waiting, log streams, details, shutdown."""

from __future__ import annotations

import asyncio
import bisect
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from toolship.api import access
from toolship.api.labelled import labelled
from toolship.api.state import AppState, app_state
from toolship.api.views import render, resolved_resources
from toolship.config import Settings
from toolship.db import TaskRow
from toolship.errors import InvalidRequest
from toolship.identity import Role
from toolship.models import Resources, View
from toolship.options import OptionDefaults, read_options
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
    await access.check_task(request, id)
    state = await app_state(request).engine.wait(id, timeout)
    return JSONResponse({"id": id, "state": state.value, "final": is_final(state)})


@router.get("/tasks/{id}", operation_id="TaskDetails")
async def task_details(request: Request, id: str) -> JSONResponse:
    """The FULL TES task plus what only toolship knows (runtime, resources, directories)."""
    st = app_state(request)
    row = access.check_row(request, st.store.get(id))
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
        "replica": row.replica,  # the replica that runs it (several share one database)
        # job id, state and nodes when the Slurm backend ran it
        "slurm": None if rt.slurm is None else rt.slurm.model_dump(exclude_none=True),
        "ranks": [r.model_dump() for r in rt.ranks or []],  # multi-node: each rank's node and exit
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
    rank: Annotated[int | None, Query(ge=0, le=4095)] = None,
    all_ranks: bool = False,
) -> StreamingResponse:
    """The full stdout or stderr of the latest attempt (all executors in order, or one).

    ``attempt``: start with this attempt (1 = the first) instead of the latest; with
    ``follow``, every later attempt (a retry) follows in order.  ``rank``: of a multi-node
    task, that rank's output (0, the default, is the first rank's).  ``all_ranks``: every
    rank's, each line prefixed with its rank as ``srun --label`` does ("1: …"); a one-node
    task's output comes unlabelled.
    """
    st = app_state(request)
    # Rows are read in a thread: a task's spec may hold thousands of executors.
    row = await access.visible_task(request, id, with_logs=False)
    count = len(row.spec["executors"])
    if executor is not None and not 0 <= executor < count:
        raise InvalidRequest(f"executor must be between 0 and {count - 1}")
    if rank is not None and all_ranks:
        raise InvalidRequest("give rank (one rank's output) or all_ranks (every rank's), not both")
    nodes = 1 if rank is None and not all_ranks else _nodes(row, st.settings)
    if rank is not None and rank >= nodes:
        if nodes == 1:
            raise InvalidRequest(
                f"task {id} runs on one node: its only rank is 0 (rank is for tasks with nodes > 1)"
            )
        raise InvalidRequest(
            f"rank must be between 0 and {nodes - 1}: task {id} runs on {nodes} nodes"
        )
    indexes = [executor] if executor is not None else list(range(count))
    chunks = (
        labelled([_log_chunks(st, id, indexes, stream, follow, attempt, r) for r in range(nodes)])
        if all_ranks and nodes > 1
        else _log_chunks(st, id, indexes, stream, follow, attempt, rank or 0)
    )
    return StreamingResponse(chunks, media_type="text/plain; charset=utf-8")


def _nodes(row: TaskRow, settings: Settings) -> int:
    """How many nodes (ranks) the task runs on: its options as they were accepted."""
    sent = row.spec.get("resources")
    resources = None if sent is None else Resources.model_validate(sent)
    return read_options(resources, row.resolved or OptionDefaults.of(settings)).nodes


async def _log_chunks(
    st: AppState,
    task_id: str,
    indexes: list[int],
    stream: str,
    follow: bool,
    first: int | None,
    rank: int,
) -> AsyncIterator[bytes]:
    """The latest attempt's stream; following, also every attempt a retry starts later."""
    while True:
        row = await asyncio.to_thread(st.store.get, task_id)
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
                                           follow, row, rank):  # fmt: skip
            yield chunk
        if not follow:
            return
        while True:  # attempt directories are numbered; a retry makes the next one
            row = await asyncio.to_thread(st.store.get, task_id)
            if len(row.logs) > number:
                number += 1
                break
            if is_final(row.state):
                return
            await asyncio.sleep(_FOLLOW_POLL)


async def _attempt_chunks(
    st: AppState,
    task_id: str,
    base: str,
    indexes: list[int],
    stream: str,
    follow: bool,
    row: TaskRow,
    rank: int = 0,
) -> AsyncIterator[bytes]:
    """One attempt's captures, executor after executor (only the server's own files in logs/).

    One thread hop reads up to a chunk across as many ended executors as it takes, so
    a task with thousands of executors costs a handful of hops, not one per executor;
    following, the task row is read once per poll, only while waiting for the
    executor being shown.
    """
    executors = row.spec["executors"]
    logs = AttemptLayout(base=Path(base)).logs
    names = await asyncio.to_thread(_capture_names, executors, indexes, stream, rank)
    final, done = _progress(row, base)
    cursor = _Cursor()
    while cursor.position < len(names):
        # Executors before ``ended`` have written all they will: reading moves past them.
        ended = len(names) if not follow or final else bisect.bisect_left(indexes, done)
        data = await asyncio.to_thread(_read_span, logs, names, cursor, ended)
        if data:
            yield data
            continue
        if cursor.position >= len(names):
            break
        await asyncio.sleep(_FOLLOW_POLL)
        final, done = _progress(await asyncio.to_thread(st.store.get, task_id), base)


def _capture_names(
    executors: list[dict[str, Any]], indexes: list[int], stream: str, rank: int = 0
) -> list[str]:
    """The captures to read; rank r > 0 of a multi-node task writes ``<capture>.rank<r>``."""
    names = []
    for i in indexes:
        ex = executors[i]
        out, err = AttemptLayout.capture_names(i, ex.get("stdout"), ex.get("stderr"))
        name = out if stream == "stdout" else err
        names.append(f"{name}.rank{rank}" if rank else name)
    return names


@dataclass
class _Cursor:
    """Where a log stream stands: which capture, and how far into it."""

    position: int = 0
    offset: int = 0


def _read_span(logs: Path, names: list[str], cursor: _Cursor, ended: int) -> bytes:
    """Up to a chunk from the cursor on, moving past captures of executors that have ended.

    A capture that has not ended is read to its current end and the cursor stays in
    it.  The directory is listed once: an ended executor that printed nothing costs
    no system call.
    """
    parts: list[bytes] = []
    size = 0
    with taskfs.Folder(logs, "log file") as folder:
        while cursor.position < len(names) and size < _CHUNK:
            # Whether it has ended is known before listing: what is read then is all of it.
            over = cursor.position < ended
            try:
                data = folder.read_at(names[cursor.position], cursor.offset, _CHUNK - size,
                                      listed=over)  # fmt: skip
            except taskfs.TaskPathError:  # only a process-runtime task could put one there
                data = b""
            parts.append(data)
            size += len(data)
            cursor.offset += len(data)
            if data:
                continue  # there may be more of the same capture
            if not over:
                break
            cursor.position, cursor.offset = cursor.position + 1, 0
    return b"".join(parts)


def _progress(row: TaskRow, base: str) -> tuple[bool, int]:
    """(is the attempt over, how many of its executors have ended)."""
    final = is_final(row.state) or row.runtime.attempt_dir != base
    done = len(row.logs[-1].logs) if row.logs else 0
    return final, done


@embedded_only.post("/server/shutdown", operation_id="Shutdown")
async def shutdown(request: Request) -> JSONResponse:
    """Stop the server; running executors keep running and are followed again on restart."""
    access.require(request, Role.ADMIN, "stopping the server")
    asyncio.get_running_loop().call_later(0.1, os.kill, os.getpid(), signal.SIGTERM)
    return JSONResponse({"status": "stopping"})
