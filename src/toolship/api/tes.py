"""GA4GH TES v1.1 routes, served under /ga4gh/tes/v1 and /v1."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from toolship import __version__
from toolship.api import access
from toolship.api.events import audit, record
from toolship.api.state import AppState, app_state
from toolship.api.views import render
from toolship.db.store import ListFilter
from toolship.errors import InvalidRequest
from toolship.identity import Role
from toolship.models import (
    CreateTaskResponse,
    LegacyServiceInfo,
    ListTasksResponse,
    ServiceInfo,
    ServiceOrganization,
    ServiceType,
    Task,
    TaskView,
    View,
)
from toolship.options import BACKEND_PARAMETERS
from toolship.states import TaskState

__all__ = ["cancel", "create", "get_legacy_service_info", "router"]

router = APIRouter(tags=["TaskService"])

MAX_PAGE = 2047
DEFAULT_PAGE = 256


def _json(data: Any) -> JSONResponse:
    return JSONResponse(data)


class CancelTaskResponse(BaseModel):
    """TES's answer to a cancel: an empty object."""

    model_config = ConfigDict(extra="forbid")


def _description(state: AppState) -> str:
    """What this server is, and where its images may come from when the operator says.

    (TES clients such as py-tes refuse a service-info with fields TES does not name,
    so the rule is said here; the TRS service-info carries it as fields.)
    """
    text = "toolship: run containerized tools next to the data"
    images = state.settings.images
    if images.approved_registries:
        text += f"; images only from {', '.join(images.approved_registries)}"
    if images.trust != "any":
        text += f"; image trust: {images.trust}"
    return text


def service_info(state: AppState) -> ServiceInfo:
    s = state.settings.server
    return ServiceInfo(
        id=f"org.toolship.{s.service_name}",
        name=s.service_name,
        type=ServiceType(group="org.ga4gh", artifact="tes", version="1.1.0"),
        description=_description(state),
        organization=ServiceOrganization(name=s.organization, url=s.organization_url),
        documentationUrl="https://github.com/toolship/toolship",
        environment="embedded" if state.embedded else "production",
        version=__version__,
        storage=state.storage.prefixes(),
        tesResources_backend_parameters=sorted(BACKEND_PARAMETERS),
    )


def legacy_service_info(state: AppState) -> LegacyServiceInfo:
    info = service_info(state)
    return LegacyServiceInfo(name=info.name, doc=info.description, storage=info.storage)


async def get_legacy_service_info(request: Request) -> JSONResponse:
    """TES 1.0's GetServiceInfo, at TES 1.0's path: ``name``, ``doc``, ``storage`` only."""
    return _json(legacy_service_info(app_state(request)).model_dump(exclude_none=True))


@router.get(
    "/service-info",
    operation_id="GetServiceInfo",
    summary="GetServiceInfo",
    response_model=ServiceInfo,
    response_model_exclude_none=True,
)
async def get_service_info(request: Request) -> JSONResponse:
    return _json(service_info(app_state(request)).model_dump(exclude_none=True))


ViewParam = Annotated[View, Query(description="MINIMAL (default), BASIC or FULL")]


@router.get(
    "/tasks",
    operation_id="ListTasks",
    summary="ListTasks",
    response_model=ListTasksResponse,
    response_model_exclude_none=True,
)
async def list_tasks(
    request: Request,
    name_prefix: str | None = None,
    state: TaskState | None = None,
    tag_key: Annotated[list[str] | None, Query()] = None,
    tag_value: Annotated[list[str] | None, Query()] = None,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    page_token: str | None = None,
    view: ViewParam = View.MINIMAL,
) -> JSONResponse:
    st = app_state(request)
    keys, values = tag_key or [], tag_value or []
    limit = st.settings.limits.max_tag_filters
    if len(keys) > limit:
        raise InvalidRequest(
            f"{len(keys)} tag_key parameters: at most {limit} are accepted in one call "
            "(limits.max_tag_filters); filter by fewer tags"
        )
    if len(values) > len(keys):
        raise InvalidRequest("more tag_value than tag_key parameters; they are paired in order")
    tags = tuple((k, values[i] if i < len(values) else "") for i, k in enumerate(keys))
    page = st.store.list(
        ListFilter(
            name_prefix=name_prefix or None, state=state, tags=tags, owner=access.reader(request)
        ),
        page_size=page_size,
        page_token=page_token or None,
        full_rows=view is not View.MINIMAL,
        with_logs=view is not View.MINIMAL,
    )
    tasks = [render(r, view) for r in page.items]
    if page.next_token:
        return _json({"tasks": tasks, "next_page_token": page.next_token})
    return _json({"tasks": tasks})


@router.post(
    "/tasks",
    operation_id="CreateTask",
    summary="CreateTask",
    response_model=CreateTaskResponse,
)
async def create_task(request: Request, task: Annotated[Task, Body()]) -> JSONResponse:
    return _json({"id": await create(request, task)})


async def create(request: Request, task: Task) -> str:
    """CreateTask as the caller (the web UI's new-task form too): the new task's id."""
    owner = access.require(request, Role.USER, "creating tasks")
    # The event is written with the task, in its transaction.
    event = audit(request, "task.create", task.name or "")
    return await app_state(request).engine.create(task, owner, event)


# Declared before GET /tasks/{id}: "{id}" would otherwise also match "x:cancel".
@router.post(
    "/tasks/{id}:cancel",
    operation_id="CancelTask",
    summary="CancelTask",
    response_model=CancelTaskResponse,
)
async def cancel_task(request: Request, id: str) -> JSONResponse:
    await cancel(request, id)
    return _json({})


async def cancel(request: Request, task_id: str) -> None:
    """Cancel a task the request may see, if its role may (the web UI's button too)."""
    access.require(request, Role.USER, "canceling tasks")
    await access.check_task(request, task_id)
    app_state(request).engine.cancel(task_id)
    record(request, "task.cancel", task_id)


@router.get(
    "/tasks/{id}",
    operation_id="GetTask",
    summary="GetTask",
    response_model=TaskView,
    response_model_exclude_none=True,
)
async def get_task(request: Request, id: str, view: ViewParam = View.MINIMAL) -> JSONResponse:
    store = app_state(request).store
    if view is View.MINIMAL:
        await access.check_task(request, id)
        return _json({"id": id, "state": store.get_state(id).value})
    return _json(render(access.check_row(request, store.get(id)), view))
