"""SBOMs at /api/v1/sboms (by image digest) and /api/v1/tasks/{id}/sbom (what a task ran)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, Response

from toolship.api import access
from toolship.api.batches import reply
from toolship.api.state import app_state
from toolship.errors import NotFound
from toolship.identity import Role
from toolship.provenance.sboms import Sboms
from toolship.supply.images import image_uses
from toolship.supply.sboms import MEDIA_TYPES, MakeSbom, SbomInfo, StoredSbom, check_format

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["sboms"])

Format = Annotated[
    str,
    Query(description="cyclonedx (CycloneDX 1.6 JSON), cyclonedx-1.4, or spdx (SPDX 2.3 JSON)"),
]
_DOCUMENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {media: {} for media in MEDIA_TYPES.values()}, "description": "The SBOM"}
}


def _sboms(request: Request) -> Sboms:
    sboms = app_state(request).sboms
    assert sboms is not None, "the app's lifespan makes it"
    return sboms


def _document(sbom: StoredSbom, format: str) -> Response:
    check_format(format)
    return Response(sbom.document(format), media_type=MEDIA_TYPES[format])


@router.post(
    "/sboms",
    operation_id="MakeSbom",
    response_model=SbomInfo,
    status_code=201,
    responses={200: {"model": SbomInfo, "description": "Already stored for this digest"}},
)
async def make_sbom(request: Request, body: Annotated[MakeSbom, Body()]) -> JSONResponse:
    """The SBOM of an image, made now (syft, offline) unless its digest has one.

    201 when made by this request, 200 when stored already; ``error`` says why none
    could be made (then GET answers 404 with it).
    """
    access.require(request, Role.USER, "making SBOMs")
    sboms = _sboms(request)
    sbom, made = await asyncio.to_thread(sboms.for_image, body.image)
    info = sboms.store.info(sbom.digest)
    return JSONResponse(info.model_dump(mode="json"), status_code=201 if made else 200)


@router.get("/sboms/{digest}", operation_id="GetSbom", response_class=Response, responses=_DOCUMENT)
async def get_sbom(request: Request, digest: str, format: Format = "cyclonedx") -> Response:
    """The stored SBOM of a manifest digest (``sha256:…``) in one format."""
    check_format(format)
    return _document(_sboms(request).store.get(digest), format)


@router.get("/sboms/{digest}/info", operation_id="GetSbomInfo", response_model=SbomInfo)
async def get_sbom_info(request: Request, digest: str) -> JSONResponse:
    """What is stored for a digest: when and with what it was made, or why it could not be."""
    return reply(_sboms(request).store.info(digest))


@router.get(
    "/tasks/{id}/sbom", operation_id="GetTaskSbom", response_class=Response, responses=_DOCUMENT
)
async def get_task_sbom(
    request: Request,
    id: str,
    executor: Annotated[int, Query(ge=0, description="Which executor's image")] = 0,
    format: Format = "cyclonedx",
) -> Response:
    """The SBOM of the image an executor of the task's latest attempt ran (by the digest
    it recorded), made now when none is stored."""
    check_format(format)
    row = await access.visible_task(request, id)
    attempts = [uses for log in row.logs if (uses := image_uses(log.metadata))]
    if not attempts:
        raise NotFound(
            f"task {id} recorded no image: it has not started yet, or it ran with the "
            "process runtime (no image, so no SBOM)"
        )
    chosen = [u for u in attempts[-1] if u.executor == executor]
    if not chosen:
        count = len(row.spec.get("executors") or [])
        raise NotFound(
            f"task {id} has no executor {executor} that recorded an image (executors 0 to "
            f"{count - 1}); pass another --executor"
        )
    if not chosen[0].digest:
        raise NotFound(
            f"the runtime could not say which digest {chosen[0].image} was when task {id} "
            "ran it, so its SBOM cannot be named: ask for the image's own with `toolship sbom "
            "IMAGE`"
        )
    sbom, _ = await asyncio.to_thread(_sboms(request).ensure, chosen[0], again=True)
    return _document(sbom, format)
