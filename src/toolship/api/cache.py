"""The result cache at /api/v1/cache: list the stored keys, forget one."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request

from toolship.api import access
from toolship.api.state import app_state
from toolship.errors import InvalidRequest, NotFound
from toolship.identity import Role
from toolship.supply.cache import CacheList

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["toolship"])

_KEY = re.compile(r"sha256:[0-9a-f]{64}")


@router.get("/cache", response_model=CacheList)
def list_cache(request: Request, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> CacheList:
    """The stored keys, newest first, with the COMPLETE task each one answers with
    (only those of tasks the caller may see)."""
    entries = app_state(request).engine.cache.entries
    return CacheList(entries=entries.list(limit, owner=access.reader(request)))


@router.delete("/cache/{key}", status_code=204)
def forget_key(request: Request, key: str) -> None:
    """Forget a key: later tasks with it run again (the task and its outputs stay)."""
    access.require(request, Role.USER, "forgetting cache keys")
    if not _KEY.fullmatch(key):
        raise InvalidRequest(
            f"cache key {key!r} is not sha256: and 64 hex digits; `toolship cache ls` lists them"
        )
    entries = app_state(request).engine.cache.entries
    if not entries.delete(key, owner=access.reader(request)):
        raise NotFound(f"no cache key {key}; `toolship cache ls` lists the stored ones")
