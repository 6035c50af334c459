"""The new-task form (a raw task) of the web UI."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from toolship.web.pages import page, viewer
from toolship.web.session import Session

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/new", response_class=HTMLResponse)
async def new_page(request: Request, _session: Annotated[Session, Depends(viewer)]) -> HTMLResponse:
    return page(request, "new.html", nav="new")
