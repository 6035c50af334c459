"""An output file of a task, read back through the server: ``GET /api/v1/tasks/{id}/outputs/{n}``.

The client needs no access of its own to where the output went (an object store's
endpoint and keys, a shared file system): the server reads it with the task owner's
storage rights, as the task wrote it.  The web UI's download is the same response.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from toolship.api import access
from toolship.api.state import app_state
from toolship.errors import NotFound, ToolshipError
from toolship.storage import StageContext

__all__ = ["output_file", "router"]

router = APIRouter(prefix="/api/v1", tags=["toolship"])


@router.get("/tasks/{id}/outputs/{n}", operation_id="TaskOutput")
async def task_output(request: Request, id: str, n: int) -> Response:
    """Output file ``n`` (its place in the last attempt's ``outputs``) as bytes."""
    return await output_file(request, id, n)


async def output_file(request: Request, id: str, n: int) -> Response:
    """Output file ``n`` of the last attempt, read with the task owner's storage rights.

    The URL must be one the attempt delivered to, and the storage checks of an
    input apply (allowed roots, never toolship's own files, no link followed);
    what the request may not see, or cannot be read, is the 404 of a missing output.
    """
    row = await access.visible_task(request, id)
    outputs = row.logs[-1].outputs if row.logs else []
    if not 0 <= n < len(outputs):
        raise _no_output(id, n)
    out = outputs[n]
    storage = app_state(request).storage.for_owner(row.owner)
    folder = tempfile.TemporaryDirectory(prefix="toolship-download-")
    dest = Path(folder.name) / "file"
    try:
        backend = storage.for_url(out.url)
        with ThreadPoolExecutor(max_workers=2) as pool:
            ctx = StageContext(pool=pool, credentials={}, attempts=1)
            await asyncio.to_thread(backend.check_input, out.url, "FILE")
            await asyncio.to_thread(backend.fetch, out.url, dest, "FILE", ctx)
        if not dest.is_file():
            raise _no_output(id, n)
    except ToolshipError as exc:
        folder.cleanup()
        raise NotFound(
            f"output {n} of task {id} ({out.path}) cannot be read now: {exc.message}"
        ) from None
    except BaseException:
        folder.cleanup()
        raise
    name = Path(out.path).name or "output"
    return StreamingResponse(
        _file_chunks(dest, folder),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}"},
    )


def _no_output(task_id: str, n: int) -> NotFound:
    return NotFound(
        f"task {task_id} has no output file {n}: its outputs are listed in the task's "
        "latest attempt (toolship show, or GET /ga4gh/tes/v1/tasks/{id}?view=BASIC), from 0"
    )


async def _file_chunks(
    path: Path, folder: tempfile.TemporaryDirectory[str]
) -> AsyncIterator[bytes]:
    try:
        with path.open("rb") as src:
            while chunk := await asyncio.to_thread(src.read, 1024 * 1024):
                yield chunk
    finally:
        folder.cleanup()
