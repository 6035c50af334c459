"""The tasks pages of the web UI: the list (filters, keyset pages, counts) and one task.

The list reads only the columns a line shows (``Store.list_brief``), one page of
:data:`PAGE_SIZE`, newest first; its filters are the URL's query, so a view can
be bookmarked.  Counts by state come in a second request (``hx-get`` on load):
the first page never waits for a count over a million rows.  States change live
through one server-sent-events stream per page (:mod:`toolship.web.live`).

DOM contract (browser tests): ``<form role="search">`` with the labels "State",
"Name starts with", "Tag", "Batch", "Service", "Owner" and the button "Filter";
``<tbody id="task-rows">`` with a ``<tr id="task-{id}">`` per task; the state
badge ``id="state-{id}"``; links "Next page" (``rel="next"``) and "First page";
``<ul class="counts" id="counts">`` with ``<li data-state="S">``.  The task page:
``id="task-state"``, ``<pre class="log" id="log-stdout">`` / ``log-stderr``, the
buttons "Load earlier", "Cancel task", "Rerun", the links "Download" and
"Provenance".

Deviation from the design: the live log stream takes ``stream``/``from`` pairs
(``?stream=stdout&from=N&stream=stderr&from=M``, paired in order like TES's
``tag_key``/``tag_value``) so one stream per page follows both logs and the state,
and ``executor=K`` names whose captures (default: the latest executor started).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from toolship.api import access, tes
from toolship.api.outputs import output_file
from toolship.api.provenance import get_provenance, get_task_crate
from toolship.api.reruns import rerun_of
from toolship.api.state import app_state
from toolship.api.views import resolved_resources
from toolship.db.store import ListFilter
from toolship.errors import InvalidRequest
from toolship.identity import Role
from toolship.states import TaskState, is_final
from toolship.supply.hashes import file_hashes
from toolship.supply.reruns import RerunRequest
from toolship.web import logtail
from toolship.web.pages import changer, page, viewer
from toolship.web.session import Session

__all__ = ["PAGE_SIZE", "Filters", "router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZE = 50
_FIELD = 200  # longest filter value taken (a name prefix, a tag)


@dataclass(frozen=True)
class Filters:
    """The list's filters, as the URL's query has them (empty: not filtered)."""

    state: str = ""
    name: str = ""
    tag: str = ""
    batch: str = ""
    service: str = ""
    owner: str = ""

    @classmethod
    def of(cls, request: Request) -> Filters:
        q = request.query_params
        values = {f: q.get(f, "").strip() for f in cls.__dataclass_fields__}
        for name, value in values.items():
            if len(value) > _FIELD:
                raise InvalidRequest(
                    f"the filter {name} is {len(value)} characters long; at most {_FIELD} "
                    "are taken: shorten it"
                )
        if values["state"] and values["state"] not in TaskState.__members__:
            known = ", ".join(s.value for s in TaskState)
            raise InvalidRequest(f"state {values['state']!r} is not a task state; one of {known}")
        return cls(**values)

    def store_filter(self, request: Request) -> ListFilter:
        """The store's filter: what the request may see, narrowed by these."""
        reader = access.reader(request)
        tags: tuple[tuple[str, str], ...] = ()
        if self.tag:
            key, _, value = self.tag.partition("=")
            tags = ((key.strip(), value.strip()),)
        return ListFilter(
            name_prefix=self.name or None,
            state=TaskState(self.state) if self.state else None,
            tags=tags,
            batch=self.batch or None,
            owner=reader if reader is not None else (self.owner or None),
            service=self.service or None,
        )

    def query(self, **extra: str) -> str:
        """The query string of these filters (and ``extra``), empty ones left out."""
        pairs = {f: getattr(self, f) for f in self.__dataclass_fields__} | extra
        return urlencode({k: v for k, v in pairs.items() if v})


@dataclass(frozen=True)
class Listing:
    tasks: list[Any]
    next_token: str | None
    filters: Filters
    page_token: str
    live: list[str]  # the ids whose state may still change


async def _listing(request: Request, page_token: str | None) -> Listing:
    filters = Filters.of(request)
    store = app_state(request).store
    items, token = await asyncio.to_thread(
        store.list_brief, filters.store_filter(request), page_size=PAGE_SIZE,
        page_token=page_token or None,
    )  # fmt: skip
    live = [t.id for t in items if not is_final(t.state)]
    return Listing(items, token, filters, page_token or "", live)


def _list_context(request: Request, listing: Listing) -> dict[str, Any]:
    return {
        "listing": listing,
        "filters": listing.filters,
        "owner_filter": access.reader(request) is None,
        "page_size": PAGE_SIZE,
    }


PageToken = Annotated[str | None, Query(alias="page", max_length=40)]


@router.get("/tasks", response_class=HTMLResponse)
async def tasks_page(
    request: Request, _session: Annotated[Session, Depends(viewer)], page_token: PageToken = None
) -> HTMLResponse:
    listing = await _listing(request, page_token)
    return page(request, "tasks.html", nav="tasks", **_list_context(request, listing))


@router.get("/tasks/rows", response_class=HTMLResponse)
async def task_rows(
    request: Request, _session: Annotated[Session, Depends(viewer)], page_token: PageToken = None
) -> HTMLResponse:
    """The table and its pager alone (the batch page embeds it with ``batch=ID``)."""
    listing = await _listing(request, page_token)
    return page(request, "_task_rows.html", **_list_context(request, listing))


@router.get("/tasks/counts", response_class=HTMLResponse)
async def task_counts(
    request: Request, _session: Annotated[Session, Depends(viewer)]
) -> HTMLResponse:
    filters = Filters.of(request)
    store = app_state(request).store
    counts = await asyncio.to_thread(store.counts, filters.store_filter(request))
    shown = [(s.value, counts[s]) for s in TaskState if counts.get(s)]
    return page(request, "_counts.html", counts=shown, total=sum(counts.values()), filters=filters)


# --- one task ------------------------------------------------------------------


@router.get("/tasks/{id}", response_class=HTMLResponse)
async def task_page(
    request: Request,
    id: str,
    _session: Annotated[Session, Depends(viewer)],
    executor: Annotated[int | None, Query(ge=0)] = None,
) -> HTMLResponse:
    row = await access.visible_task(request, id)
    shown = logtail.current_executor(row) if executor is None else executor
    count = len(row.spec.get("executors") or [])
    if not 0 <= shown < max(count, 1):
        raise InvalidRequest(f"executor must be between 0 and {count - 1}: task {id} has {count}")
    logs = await asyncio.to_thread(logtail.tails, row, shown)
    attempts = row.logs
    last = attempts[-1] if attempts else None
    hashes = file_hashes(last.metadata) if last is not None else {}
    follow = not is_final(row.state)
    who = request.state.principal
    return page(
        request,
        "task.html",
        nav="tasks",
        row=row,
        task=row.spec,
        attempts=attempts,
        outputs=list(last.outputs) if last is not None else [],
        hashes=hashes,
        resources=resolved_resources(row),
        used=_used(last.metadata if last is not None else None),
        executor=shown,
        executors=count,
        logs=logs,
        follow=follow,
        follow_query=logtail.follow_query(shown, logs) if follow else "",
        may_change=who.at_least(Role.USER),
    )


def _used(metadata: dict[str, str] | None) -> list[tuple[str, str]]:
    """What the last attempt used, as its metadata says (toolship's own keys)."""
    return sorted((k, v) for k, v in (metadata or {}).items() if k.startswith("toolship."))


@router.get("/tasks/{id}/log", response_class=HTMLResponse)
async def earlier_log(
    request: Request,
    id: str,
    _session: Annotated[Session, Depends(viewer)],
    before: Annotated[int, Query(ge=0)],
    stream: Literal["stdout", "stderr"] = "stdout",
    executor: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    """The :data:`logtail.TAIL` bytes of a capture before ``before`` (never the whole file)."""
    row = await access.visible_task(request, id, with_logs=True)
    chunk = await asyncio.to_thread(logtail.earlier, row, executor, stream, before)
    return page(request, "_log_earlier.html", task_id=id, chunk=chunk, executor=executor)


@router.get("/tasks/{id}/outputs/{n}")
async def download(
    request: Request, id: str, n: int, _session: Annotated[Session, Depends(viewer)]
) -> Response:
    """Output file ``n`` of the last attempt (the API's response, with the session's rights)."""
    return await output_file(request, id, n)


@router.get("/tasks/{id}/provenance")
async def provenance(
    request: Request, id: str, _session: Annotated[Session, Depends(viewer)]
) -> Response:
    """The API's provenance record of the task (JSON), read with the session's rights."""
    return await get_provenance(request, id)


@router.get("/tasks/{id}/crate")
async def crate(
    request: Request, id: str, _session: Annotated[Session, Depends(viewer)]
) -> Response:
    """The API's Process Run Crate of the task (zip), read with the session's rights."""
    return await get_task_crate(request, id)


@router.post("/tasks/{id}/cancel", response_class=HTMLResponse)
async def cancel_task(
    request: Request, id: str, _session: Annotated[Session, Depends(changer)]
) -> Response:
    await tes.cancel(request, id)
    if "hx-request" in request.headers:
        return page(request, "_canceling.html")
    return RedirectResponse(f"/ui/tasks/{id}", status_code=303)


@router.post("/tasks/{id}/rerun")
async def rerun_task(
    request: Request, id: str, _session: Annotated[Session, Depends(changer)]
) -> Response:
    info = await rerun_of(request, id, RerunRequest())
    target = f"/ui/tasks/{info.id}"
    if "hx-request" in request.headers:
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
