"""The services catalog at /api/v1/services, and image builds at /api/v1/builds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from toolship.api import access
from toolship.api.batches import reply
from toolship.api.events import audit, record
from toolship.api.state import app_state
from toolship.catalog.lower import lower
from toolship.identity import Role
from toolship.models import CreateTaskResponse, ErrorResponse
from toolship.services import (
    BuildInfo,
    RegisterImage,
    ServiceList,
    ServiceRun,
    ServiceVersion,
    ServiceVersions,
)

__all__ = ["router", "run_as_task"]

router = APIRouter(prefix="/api/v1", tags=["services"])


@router.get("/services", operation_id="ListServices", response_model=ServiceList)
async def list_services(
    request: Request,
    q: Annotated[str | None, Query(description="Match in the name or description")] = None,
) -> JSONResponse:
    """The catalog: one line per service with a version that is not deprecated."""
    return reply(ServiceList(services=app_state(request).catalog.summaries(q)))


@router.post(
    "/services",
    operation_id="RegisterService",
    response_model=ServiceVersion,
    status_code=201,
    responses={
        200: {"model": ServiceVersion, "description": "This name already pins the digest"},
        409: {
            "model": ErrorResponse,
            "description": "--version names a version that pins another digest",
        },
    },
)
async def register_service(
    request: Request, body: Annotated[RegisterImage, Body()]
) -> JSONResponse:
    """Register an existing image (local, or in a registry) as a service version.

    201 with the new version; 200 with the version this name already pins the
    image's digest as.
    """
    access.require(request, Role.MAINTAINER, "registering services")
    services = app_state(request).services
    done = await asyncio.to_thread(
        services.register, body.image, name=body.name, version=body.version
    )
    if done.created:
        v = done.version
        record(request, "service.publish", f"{v.name}@{v.version}", body.image)
    return JSONResponse(
        done.version.model_dump(mode="json", exclude_none=True),
        status_code=201 if done.created else 200,
    )


@router.get("/services/{name}", operation_id="GetService", response_model=ServiceVersions)
async def get_service(request: Request, name: str) -> JSONResponse:
    """Every version of a service, newest first (deprecated ones flagged)."""
    catalog = app_state(request).catalog
    versions = catalog.versions(name)
    if not versions:
        catalog.get(name)  # the 404 that says which services there are
    return reply(ServiceVersions(name=name, versions=versions))


@router.get(
    "/services/{name}/versions/{version}",
    operation_id="GetServiceVersion",
    response_model=ServiceVersion,
)
async def get_service_version(request: Request, name: str, version: str) -> JSONResponse:
    return reply(app_state(request).catalog.get(name, version))


@router.post(
    "/services/{name}/versions/{version}/deprecate",
    operation_id="DeprecateServiceVersion",
    response_model=ServiceVersion,
)
async def deprecate_service_version(request: Request, name: str, version: str) -> JSONResponse:
    """Hide a version from the catalog and refuse new runs of it; old tasks keep it."""
    access.require(request, Role.MAINTAINER, "deprecating services")
    deprecated = app_state(request).catalog.deprecate(name, version)
    record(request, "service.deprecate", f"{name}@{version}")
    return reply(deprecated)


@router.post("/services/{name}/runs", operation_id="RunService", response_model=CreateTaskResponse)
async def run_service(
    request: Request, name: str, run: Annotated[ServiceRun, Body()]
) -> JSONResponse:
    """Run a service: its ports and parameters checked, then an ordinary TES task created."""
    return JSONResponse({"id": await run_as_task(request, name, run)})


async def run_as_task(request: Request, name: str, run: ServiceRun) -> str:
    """The id of the task that runs ``run`` of service ``name`` (the web UI's form too)."""
    owner = access.require(request, Role.USER, "running services")
    state = app_state(request)
    version = state.services.runnable(name, run.version)
    event = audit(request, "task.create", f"service {version.name}@{version.version}")
    return await state.engine.create(lower(version, run), owner, event)


@router.post("/builds", operation_id="BuildService", response_model=BuildInfo, status_code=202)
async def build_service(
    request: Request,
    context: Annotated[UploadFile, File(description="The build folder as a tar (gzip allowed)")],
    file: Annotated[str | None, Form(description="The Containerfile inside it")] = None,
    name: Annotated[str | None, Form()] = None,
    version: Annotated[str | None, Form()] = None,
    network: Annotated[bool, Form(description="Let the build reach the network")] = False,
) -> JSONResponse:
    """Build an image from an uploaded context and register it; follow its log at …/log."""
    who = access.require(request, Role.MAINTAINER, "building services")
    builds = app_state(request).builds
    info = await builds.start(
        context.file, file=file, name=name, version=version, network=network, owner=who.name
    )
    record(request, "service.build", info.id, "@".join(x for x in (name, version) if x))
    return JSONResponse(info.model_dump(mode="json", exclude_none=True), status_code=202)


@router.get("/builds/{id}", operation_id="GetBuild", response_model=BuildInfo)
async def get_build(request: Request, id: str) -> JSONResponse:
    return reply(app_state(request).builds.get(id, reader=access.reader(request)))


@router.get(
    "/builds/{id}/log",
    operation_id="BuildLog",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
async def build_log(
    request: Request,
    id: str,
    follow: Annotated[bool, Query(description="Stream until the build ends")] = True,
) -> StreamingResponse:
    """The build's output (podman build's), streamed as it is written."""
    builds = app_state(request).builds
    builds.get(id, reader=access.reader(request))

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in builds.log(id, follow=follow):
            if await request.is_disconnected():
                return
            yield chunk

    return StreamingResponse(chunks(), media_type="text/plain; charset=utf-8")
