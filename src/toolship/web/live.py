"""Live updates of the web UI: one server-sent-events stream per page (htmx's SSE extension).

``/ui/events/tasks?ids=a,b,c`` follows the states of a list page's unfinished
tasks: one query for all of them (``Store.states``) every :data:`TICK` seconds,
an event ``state-{id}`` (the rendered badge) for each that changed, and ``done``
once all are final (the page's ``sse-close="done"`` then closes the stream, so
the browser does not reconnect).

``/ui/events/tasks/{id}/log?executor=K&stream=stdout&from=N&stream=stderr&from=M``
follows one task page: its state (``task-state``) and what its captures gained
since the offsets the page shows (``log-stdout``, ``log-stderr``: the new text,
HTML-escaped), read through :mod:`toolship.web.logtail` every :data:`TICK`
seconds, until the task is final and its captures are read to their end.

What a stream costs while nothing changes: one small read of the store (and one
bounded read of each capture) per :data:`TICK`, in the event loop (the store's
calls are short; see :mod:`toolship.db.store`), no thread hop and no timer but the
sleep; a comment every :data:`KEEPALIVE` seconds keeps proxies from closing it.
A stream follows the attempt it started with; a retry's new attempt shows on reload.
"""

from __future__ import annotations

import asyncio
import codecs
import html
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from markupsafe import Markup

from toolship.api import access
from toolship.api.state import app_state
from toolship.db.store import Store, TaskRow
from toolship.errors import InvalidRequest
from toolship.states import TaskState, is_final
from toolship.web import logtail
from toolship.web.pages import templates, viewer
from toolship.web.session import Session

__all__ = ["KEEPALIVE", "MAX_IDS", "TICK", "router"]

router = APIRouter(prefix="/ui/events", include_in_schema=False)

TICK = 1.0  # seconds between two reads of a stream (tests shorten it)
KEEPALIVE = 15.0  # seconds between two comments on a quiet stream
MAX_IDS = 200  # tasks one list stream follows (a page shows fewer)
_CHUNK = 256 * 1024  # most bytes of a capture one event carries
_DRAIN = 64  # most chunks read at the end (16 MiB): the rest is on the page's reload
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(name: str, data: str) -> bytes:
    """One SSE event; ``data`` with no CR (an SSE line break) in it."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {name}\n{lines}\n".encode()


def badge(state: TaskState, element: str) -> str:
    macros: Any = templates.env.get_template("_macros.html").module
    rendered: Markup = macros.state_badge(state.value, id=element, swap=element)
    return str(rendered)


def _as_html(text: str) -> str:
    """Text as HTML that shows it as it is (a CR too: SSE would read it as a line break)."""
    return html.escape(text, quote=False).replace("\r", "&#13;")


def _sse(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=_HEADERS)


@router.get("/tasks")
async def task_states(
    request: Request, _session: Annotated[Session, Depends(viewer)], ids: str = ""
) -> StreamingResponse:
    wanted = list(dict.fromkeys(i for i in ids.split(",") if i))
    if len(wanted) > MAX_IDS:
        raise InvalidRequest(
            f"{len(wanted)} task ids: one stream follows at most {MAX_IDS}; "
            "open a page of fewer tasks"
        )
    store = app_state(request).store
    owners = await asyncio.to_thread(store.owners, wanted)
    visible = [i for i in wanted if i in owners and access.sees(request, owners[i])]
    return _sse(_states(store, visible))


async def _states(store: Store, ids: Sequence[str]) -> AsyncIterator[bytes]:
    known: dict[str, TaskState] = {}
    pause = _Pause()
    while True:
        now = store.states(ids)
        for task_id, state in now.items():
            if known.get(task_id) != state:  # the first read sends all: the page may be old
                yield event(f"state-{task_id}", badge(state, f"state-{task_id}"))
        known = now
        if all(is_final(s) for s in now.values()):
            yield event("done", "")
            return
        if beat := await pause.next():
            yield beat


@router.get("/tasks/{id}/log")
async def task_log(
    request: Request,
    id: str,
    _session: Annotated[Session, Depends(viewer)],
    stream: Annotated[list[Literal["stdout", "stderr"]] | None, Query()] = None,
    offsets: Annotated[list[int] | None, Query(alias="from")] = None,
    executor: Annotated[int | None, Query(ge=0)] = None,
) -> StreamingResponse:
    row = await access.visible_task(request, id)
    count = len(row.spec.get("executors") or [])
    shown = logtail.current_executor(row) if executor is None else executor
    if not 0 <= shown < max(count, 1):
        raise InvalidRequest(f"executor must be between 0 and {count - 1}: task {id} has {count}")
    streams, starts = stream or ["stdout"], offsets or []
    if len(starts) > len(streams) or any(n < 0 for n in starts):
        raise InvalidRequest(
            "give each 'from' after its 'stream' (a byte offset, 0 or more): "
            "?stream=stdout&from=0&stream=stderr&from=0"
        )
    where: dict[str, int] = {}
    for i, name in enumerate(streams):
        where.setdefault(name, starts[i] if i < len(starts) else 0)
    store = app_state(request).store
    return _sse(_Follow(store, row, shown, where).events())


class _Pause:
    """The wait between two reads of a stream; says when a keep-alive comment is due."""

    def __init__(self) -> None:
        self.quiet = 0.0

    async def next(self) -> bytes:
        await asyncio.sleep(TICK)
        self.quiet += TICK
        if self.quiet < KEEPALIVE:
            return b""
        self.quiet = 0.0
        return b": keep-alive\n\n"


class _Follow:
    """One task page's stream: the state, and each capture from its offset on."""

    def __init__(self, store: Store, row: TaskRow, executor: int, offsets: dict[str, int]):
        self.store, self.row, self.executor = store, row, executor
        self.offsets = offsets
        self.decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in offsets}

    async def events(self) -> AsyncIterator[bytes]:
        state: TaskState | None = None
        pause = _Pause()
        while True:
            now = self.store.get_state(self.row.id)
            if now != state:
                yield event("task-state", badge(now, "task-state"))
            if self.row.runtime.attempt_dir is None and now is not TaskState.QUEUED:
                self.row = self.store.get(self.row.id)  # has its attempt a folder now?
            state = now
            final = is_final(now)
            for _ in range(_DRAIN if final else 1):
                sent = False
                for name in self.offsets:
                    data = self._read(name)
                    if data:
                        sent = True
                        yield event(f"log-{name}", data)
                if not sent:
                    break
            if final:
                yield event("done", "")
                return
            if beat := await pause.next():
                yield beat

    def _read(self, stream: str) -> str:
        """What the capture gained since the last read, as HTML ("" when nothing)."""
        found = logtail.capture(self.row, self.executor, stream)
        if found is None:
            return ""
        data = logtail.read(*found, self.offsets[stream], _CHUNK)
        self.offsets[stream] += len(data)
        return _as_html(self.decoders[stream].decode(data)) if data else ""
