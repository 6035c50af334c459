"""Who may see and do what, asked by every route: the access mode and the roles.

What a principal sees of others' tasks, batches, builds and cache entries is the
access mode's (``access.mode``, see :meth:`~toolship.identity.Principal.sees`).  A
record it may not see answers exactly as one that does not exist (the same 404,
the same message), so a 404 never tells that someone else's task is there.

What it may do is its role's: viewers read, users also run (create, cancel,
rerun), maintainers also build, register and deprecate services and import
advisories, admins also manage users.  A role too low is a 403 that names the
role needed; it is checked before the record is looked up, so it says nothing of
the record either.
"""

from __future__ import annotations

import asyncio

from fastapi import Request

from toolship.api.auth import principal
from toolship.api.state import app_state
from toolship.db.store import BatchRow, TaskRow, no_batch, no_task
from toolship.errors import Forbidden
from toolship.identity import AccessMode, Principal, Role

__all__ = [
    "check_batch",
    "check_row",
    "check_task",
    "mode",
    "reader",
    "require",
    "sees",
    "visible_task",
]


def mode(request: Request) -> AccessMode:
    return app_state(request).settings.access.mode


def reader(request: Request) -> str | None:
    """The owner whose records a listing shows (None: everyone's it may see)."""
    return principal(request).owner_filter(mode(request))


def sees(request: Request, owner: str | None) -> bool:
    return principal(request).sees(owner, mode(request))


def require(request: Request, role: Role, action: str) -> Principal:
    """The principal, if its role allows ``action`` ("creating tasks"); else a 403."""
    who = principal(request)
    if not who.at_least(role):
        raise Forbidden(
            f"{who.name} has the role {who.role.label}, and {action} needs the role "
            f"{role.label} or higher: ask an admin of this server to give it to {who.name}"
        )
    return who


def check_row(request: Request, row: TaskRow) -> TaskRow:
    """``row``, if the request may see it; else the 404 of a missing task."""
    if not sees(request, row.owner):
        raise no_task(row.id)
    return row


def check_batch(request: Request, batch: BatchRow) -> BatchRow:
    """``batch``, if the request may see it; else the 404 of a missing batch."""
    if not sees(request, batch.owner):
        raise no_batch(batch.id)
    return batch


async def check_task(request: Request, task_id: str) -> None:
    """A 404 unless the task exists and the request may see it (one small read at most)."""
    if reader(request) is None:  # it sees everyone's: the route's own read says 404
        return
    store = app_state(request).store
    if not sees(request, await asyncio.to_thread(store.owner_of, task_id)):
        raise no_task(task_id)


async def visible_task(request: Request, task_id: str, *, with_logs: bool = True) -> TaskRow:
    """The task's row, if the request may see it (read in a thread: a spec may be large)."""
    store = app_state(request).store
    row = await asyncio.to_thread(store.get, task_id, with_logs=with_logs)
    return check_row(request, row)
