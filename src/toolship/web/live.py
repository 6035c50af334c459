"""Live updates of the web UI: one server-sent-events stream per page (htmx's SSE extension)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/ui/events", include_in_schema=False)
