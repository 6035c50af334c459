"""GA4GH Tool Registry Service v2.1: a read-only view of the services catalog.

Mounted at ``/ga4gh/trs/v2`` so TRS clients and workflow engines can discover
toolship's services.  A service is a TRS *tool* (id = the service's name) of one
tool class, ``CommandLineTool``; each catalogued version is a *tool version* whose
one image is pinned by its manifest digest (``checksum`` type ``sha-256``).  Every
version is immutable, but only versions that are not deprecated are offered as
production (``is_production``).  Services carry no CWL/WDL descriptors: they run
through ``POST /api/v1/services/{name}/runs``, so the descriptor routes answer 404.

Errors answer in TRS's own shape, ``{"code": …, "message": …}``, not toolship's
``{"detail": …}``: TRS clients read that one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from toolship import __version__
from toolship.api.state import AppState, app_state
from toolship.api.trs_models import (
    TOOL_CLASS,
    TRS_VERSION,
    Checksum,
    DescriptorType,
    DescriptorTypeWithPlain,
    FileWrapper,
    ImageData,
    Tool,
    ToolClass,
    ToolVersion,
    TrsError,
    TrsServiceInfo,
)
from toolship.catalog.trust import registry_of
from toolship.errors import InvalidRequest, NotFound, ToolshipError
from toolship.models import ServiceOrganization, ServiceType
from toolship.services import ServiceVersion

__all__ = ["route_error", "router"]

MAX_LIMIT = 1000  # TRS's default page size; a larger one is refused, not cut silently


class _TrsRoute(APIRoute):
    """Every failure of a TRS route, bad query and missing token included, as a TRS Error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def trs_handler(request: Request) -> Response:
            try:
                return await handle(request)
            except ToolshipError as exc:
                return _error(exc.status_code, exc.message)
            except RequestValidationError as exc:
                return _error(400, _invalid(exc))

        return trs_handler


router = APIRouter(tags=["GA4GH TRS"], route_class=_TrsRoute)


def _invalid(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
        problems.append(f"{where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(problems) or "invalid request"


_Responses = dict[int | str, dict[str, Any]]
_DENIED: _Responses = {401: {"model": TrsError, "description": "Missing or wrong bearer token"}}
_BAD: _Responses = {
    400: {"model": TrsError, "description": "A parameter is invalid; message says why"}
}
_MISSING: _Responses = {404: {"model": TrsError, "description": "No such tool or version"}}
_FILE: _Responses = {404: {"model": TrsError, "description": "No such tool, version or file"}}


def _error(code: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = TrsError(code=code, message=message).model_dump()
    return JSONResponse(body, status_code=code, headers=headers)


def route_error(request: Request, exc: HTTPException) -> JSONResponse:
    """A request under the TRS prefix that no TRS route took, in TRS's Error shape.

    A path no route has, another method, or a path parameter a route's pattern refuses
    (``{relative_path:path}`` matches no line break) would otherwise answer FastAPI's
    ``{"detail": …}``, which TRS clients cannot read.
    """
    what = f"{request.method} {request.url.path}"
    return _error(
        exc.status_code,
        f"{exc.detail}: no TRS route answers {what!r}; GET /ga4gh/trs/v2/tools lists the tools",
        exc.headers,
    )


def _json(data: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, headers=headers)


def _sha256(hex_or_digest: str) -> Checksum:
    return Checksum(checksum=hex_or_digest.removeprefix("sha256:"), type="sha-256")


class _Links:
    """Absolute URLs of the TRS routes, from the address the client used."""

    def __init__(self, request: Request) -> None:
        self.tools = str(request.url_for("list_tools"))

    def tool(self, name: str) -> str:
        return f"{self.tools}/{quote(name, safe='')}"

    def version(self, name: str, version: str) -> str:
        return f"{self.tool(name)}/versions/{quote(version, safe='')}"


def _tool_version(v: ServiceVersion, links: _Links) -> ToolVersion:
    image = ImageData(
        registry_host=registry_of(v.repository),
        image_name=v.image,
        size=v.size,
        updated=v.created or v.registered,
        checksum=[_sha256(v.digest)],
    )
    authors = v.oci.get("authors")
    return ToolVersion(
        id=v.version,
        url=links.version(v.name, v.version),
        name=v.version,
        description=v.description or None,
        author=[authors] if authors else None,
        is_production=not v.deprecated,
        images=[image],
        descriptor_type=[],
        containerfile=v.containerfile,
        signed=bool(v.signature and v.signature.verified),
    )


def _tool(versions: list[ServiceVersion], state: AppState, links: _Links) -> Tool:
    """A tool from its versions (newest first); its description is the newest current one's."""
    current = next((v for v in versions if not v.deprecated), versions[0])
    return Tool(
        id=current.name,
        url=links.tool(current.name),
        name=current.name,
        description=current.description,
        organization=state.settings.server.organization,
        toolclass=TOOL_CLASS,
        versions=[_tool_version(v, links) for v in versions],
    )


def _versions(state: AppState, name: str) -> list[ServiceVersion]:
    versions = state.catalog.versions(name)
    if not versions:
        raise NotFound(
            f"no tool {name!r} in this registry: GET /ga4gh/trs/v2/tools lists them "
            "(tools are toolship's services; `toolship service ls`)"
        )
    return versions


def _dump(model: BaseModel) -> Any:
    return model.model_dump(exclude_none=True)


@router.get(
    "/service-info",
    operation_id="trsServiceInfo",
    summary="GA4GH service-info of this tool registry",
    response_model=TrsServiceInfo,
    response_model_exclude_none=True,
    responses=_DENIED,
)
async def get_service_info(request: Request) -> JSONResponse:
    state = app_state(request)
    s = state.settings.server
    images = state.settings.images
    info = TrsServiceInfo(
        id=f"org.toolship.{s.service_name}.trs",
        name=f"{s.service_name} tool registry",
        type=ServiceType(group="org.ga4gh", artifact="trs", version=TRS_VERSION),
        description="toolship's services catalog as a GA4GH Tool Registry Service (read-only)",
        organization=ServiceOrganization(name=s.organization, url=s.organization_url),
        documentationUrl="https://github.com/toolship/toolship",
        environment="embedded" if state.embedded else "production",
        version=__version__,
        image_trust=images.trust,
        approved_registries=images.approved_registries,
    )
    return _json(_dump(info))


@router.get(
    "/toolClasses",
    operation_id="toolClassesGet",
    summary="List all tool types",
    response_model=list[ToolClass],
    responses=_DENIED,
)
async def list_tool_classes() -> JSONResponse:
    return _json([_dump(TOOL_CLASS)])


def _matches(tool: Tool, versions: list[ServiceVersion], f: dict[str, Any]) -> bool:
    """Does ``tool`` pass every filter given (exact, but ``description`` and ``author``)?"""
    repositories = {v.repository for v in versions}
    paths = {r.partition("/")[2] if registry_of(r) != "docker.io" else r for r in repositories}
    authors = " ".join(v.oci.get("authors", "") for v in versions).casefold()
    checks: dict[str, Callable[[Any], bool]] = {
        "id": lambda x: x == tool.id,
        "toolname": lambda x: x == tool.name,
        "toolClass": lambda x: x in (TOOL_CLASS.id, TOOL_CLASS.name),
        "organization": lambda x: x == tool.organization,
        "registry": lambda x: x in {registry_of(r) for r in repositories},
        "name": lambda x: x in repositories | paths,
        "description": lambda x: x.casefold() in tool.description.casefold(),
        "author": lambda x: x.casefold() in authors,
        # Not held by a toolship service: aliases, descriptors, registry tags, checkers.
        "alias": lambda _x: False,
        "descriptorType": lambda _x: False,
        "tags": lambda _x: False,
        "checker": lambda x: not x,
    }
    return all(checks[key](value) for key, value in f.items() if value is not None)


def _offset(offset: str | None) -> int:
    if offset is None or offset == "":
        return 0
    if not offset.isdigit():
        raise InvalidRequest(
            f"offset {offset!r} is not a start index: give a whole number from 0 "
            "(the next_page header holds the next one)"
        )
    return int(offset)


@router.get(
    "/tools",
    operation_id="toolsGet",
    summary="List all tools",
    response_model=list[Tool],
    response_model_exclude_none=True,
    responses=_DENIED | _BAD,
)
async def list_tools(  # noqa: PLR0913 (TRS's filters, one parameter each)
    request: Request,
    id: str | None = None,
    alias: str | None = None,
    toolClass: str | None = None,
    descriptorType: DescriptorType | None = None,
    tags: Annotated[str | None, Query(description="Comma-separated")] = None,
    registry: str | None = None,
    organization: str | None = None,
    name: str | None = None,
    toolname: str | None = None,
    description: str | None = None,
    author: str | None = None,
    checker: bool | None = None,
    offset: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = MAX_LIMIT,
) -> JSONResponse:
    state = app_state(request)
    start = _offset(offset)
    filters = dict(
        id=id,
        alias=alias,
        toolClass=toolClass,
        descriptorType=descriptorType,
        tags=tags,
        registry=registry,
        organization=organization,
        name=name,
        toolname=toolname,
        description=description,
        author=author,
        checker=checker,
    )
    by_name: dict[str, list[ServiceVersion]] = {}
    for v in state.catalog.all():
        by_name.setdefault(v.name, []).append(v)
    links = _Links(request)
    tools = []
    for tool_name in sorted(by_name):
        tool = _tool(by_name[tool_name], state, links)
        if _matches(tool, by_name[tool_name], filters):
            tools.append(tool)
    page = tools[start : start + limit]
    last = max(len(tools) - 1, 0) // limit * limit

    def at(where: int) -> str:
        return str(request.url.include_query_params(offset=str(where), limit=limit))

    headers = {
        "self_link": at(start),
        "last_page": at(last),
        "current_offset": str(start),
        "current_limit": str(limit),
    }
    if start + limit < len(tools):
        headers["next_page"] = at(start + limit)
    return _json([_dump(t) for t in page], headers)


@router.get(
    "/tools/{id}",
    operation_id="toolsIdGet",
    summary="List one specific tool",
    response_model=Tool,
    response_model_exclude_none=True,
    responses=_DENIED | _MISSING,
)
async def get_tool(request: Request, id: str) -> JSONResponse:
    state = app_state(request)
    return _json(_dump(_tool(_versions(state, id), state, _Links(request))))


@router.get(
    "/tools/{id}/versions",
    operation_id="toolsIdVersionsGet",
    summary="List versions of a tool",
    response_model=list[ToolVersion],
    response_model_exclude_none=True,
    responses=_DENIED | _MISSING,
)
async def list_tool_versions(request: Request, id: str) -> JSONResponse:
    links = _Links(request)
    return _json([_dump(_tool_version(v, links)) for v in _versions(app_state(request), id)])


def _one(state: AppState, name: str, version: str) -> ServiceVersion:
    for v in _versions(state, name):
        if v.version == version:
            return v
    known = ", ".join(v.version for v in state.catalog.versions(name))
    raise NotFound(
        f"tool {name!r} has no version {version!r} (versions: {known}); "
        f"GET /ga4gh/trs/v2/tools/{quote(name, safe='')}/versions lists them"
    )


@router.get(
    "/tools/{id}/versions/{version_id}",
    operation_id="toolsIdVersionsVersionIdGet",
    summary="List one specific tool version",
    response_model=ToolVersion,
    response_model_exclude_none=True,
    responses=_DENIED | _MISSING,
)
async def get_tool_version(request: Request, id: str, version_id: str) -> JSONResponse:
    return _json(_dump(_tool_version(_one(app_state(request), id, version_id), _Links(request))))


@router.get(
    "/tools/{id}/versions/{version_id}/containerfile",
    operation_id="toolsIdVersionsVersionIdContainerfileGet",
    summary="The Containerfile a tool version was built from",
    response_model=list[FileWrapper],
    responses=_DENIED | _FILE,
)
async def get_containerfile(request: Request, id: str, version_id: str) -> JSONResponse:
    state = app_state(request)
    _one(state, id, version_id)
    text = state.catalog.containerfile(id, version_id)
    if text is None:
        raise NotFound(
            f"{id}@{version_id} was registered from an existing image, so no Containerfile "
            "is kept; toolship keeps the Containerfile of versions it built "
            "(`toolship service build`, POST /api/v1/builds)"
        )
    digest = hashlib.sha256(text.encode()).hexdigest()
    return _json([_dump(FileWrapper(content=text, checksum=[_sha256(digest)]))])


async def _no_descriptor(request: Request, id: str, version_id: str, type: str) -> JSONResponse:
    _one(app_state(request), id, version_id)
    raise NotFound(
        f"{id}@{version_id} has no {type} descriptor: toolship services carry none (their "
        "image labels describe them); run one with `toolship service run` or POST "
        f"/api/v1/services/{quote(id, safe='')}/runs"
    )


@router.get(
    "/tools/{id}/versions/{version_id}/{type}/descriptor",
    operation_id="toolsIdVersionsVersionIdTypeDescriptorGet",
    summary="Descriptors: none (404)",
    responses=_DENIED | _BAD | _FILE,
)
async def get_descriptor(
    request: Request, id: str, version_id: str, type: DescriptorTypeWithPlain
) -> JSONResponse:
    return await _no_descriptor(request, id, version_id, type)


@router.get(
    "/tools/{id}/versions/{version_id}/{type}/descriptor/{relative_path:path}",
    operation_id="toolsIdVersionsVersionIdTypeDescriptorRelativePathGet",
    summary="Descriptor files: none (404)",
    responses=_DENIED | _BAD | _FILE,
)
async def get_descriptor_file(
    request: Request, id: str, version_id: str, type: DescriptorTypeWithPlain, relative_path: str
) -> JSONResponse:
    return await _no_descriptor(request, id, version_id, type)


@router.get(
    "/tools/{id}/versions/{version_id}/{type}/tests",
    operation_id="toolsIdVersionsVersionIdTypeTestsGet",
    summary="Test files: none (404)",
    responses=_DENIED | _BAD | _FILE,
)
async def get_tests(
    request: Request, id: str, version_id: str, type: DescriptorTypeWithPlain
) -> JSONResponse:
    return await _no_descriptor(request, id, version_id, type)


@router.get(
    "/tools/{id}/versions/{version_id}/{type}/files",
    operation_id="toolsIdVersionsVersionIdTypeFilesGet",
    summary="Descriptor files: none (404)",
    responses=_DENIED | _BAD | _FILE,
)
async def get_files(
    request: Request, id: str, version_id: str, type: DescriptorType
) -> JSONResponse:
    return await _no_descriptor(request, id, version_id, type)
