"""The FastAPI application factory: one app, TES routes twice (/ga4gh/tes/v1 and /v1)."""

from __future__ import annotations

import gc
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypedDict

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from toolship import __version__
from toolship.api import (
    audit,
    batches,
    cache,
    events,
    metrics,
    native,
    outputs,
    provenance,
    quota,
    reruns,
    sboms,
    services,
    tes,
    trs,
    users,
    worker,
)
from toolship.api.auth import Authenticator
from toolship.api.limits import BodyLimit
from toolship.api.links import add_links
from toolship.api.oidc import OidcVerifier
from toolship.api.ratelimit import Buckets, RateLimit, exempt
from toolship.api.state import AppState
from toolship.catalog.builds import Builds, ImageTools
from toolship.catalog.catalog import Catalog
from toolship.catalog.confine import BuildLimits
from toolship.catalog.images import Images
from toolship.catalog.trust import ImageTrust
from toolship.compute import BackendFactory, make_backend
from toolship.config import ImageSettings, Settings
from toolship.db import Store
from toolship.db.catalog import CatalogStore
from toolship.db.events import EventLog
from toolship.db.sboms import SbomStore
from toolship.db.sealing import SEALER, Sealer
from toolship.db.unavailable import DatabaseFailure, unavailable
from toolship.db.users import UserStore
from toolship.engine.engine import Engine
from toolship.engine.policy import resolve_policy
from toolship.errors import ToolshipError
from toolship.models import ErrorResponse
from toolship.provenance.sbom import Scanner, Syft
from toolship.provenance.sboms import Sboms
from toolship.secrets import secure_home
from toolship.storage import make_registry
from toolship.supply.images import ImageUse

__all__ = ["create_app"]

log = logging.getLogger(__name__)

TES_PREFIXES = ("/ga4gh/tes/v1", "/v1")
TRS_PREFIX = "/ga4gh/trs/v2"


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors():
        kind = err.get("type", "")
        if kind == "json_invalid":
            ctx = err.get("ctx", {}).get("error", "")
            problems.append(f"the request body is not valid JSON ({ctx})")
        elif kind == "extra_forbidden":
            problems.append(f"unknown field {_field(err['loc'])!r}: TES v1.1 has no such field")
        elif kind == "missing":
            problems.append(f"missing required field {_field(err['loc'])!r}")
        else:
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{_field(err['loc'])}: {msg}")
    return "; ".join(problems) or "invalid request"


def _missing(path: str) -> str:
    """What a 404 of a route with a path parameter means."""
    for prefix, what in (
        ("/api/v1/services/", "No such service or version; detail lists what there is"),
        ("/api/v1/builds/", "No build with this id on this server (kept until it restarts)"),
        ("/api/v1/batches/", "No batch with this id"),
    ):
        if path.startswith(prefix):
            return what
    return "No task with this id"


class _Content(TypedDict):
    schema: dict[str, str]


class _ErrorDoc(TypedDict):
    description: str
    content: dict[str, _Content]


def _error_response(description: str) -> _ErrorDoc:
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


# Routes that check the caller's role (api/access.py): what changes something, and the
# admins' own (users, tokens, the who-did-what log, another user's quota).
_ADMIN_PATHS = ("/api/v1/users", "/api/v1/tokens", "/api/v1/events", "/api/v1/quota")


def _role_checked(method: str, path: str) -> bool:
    if path.startswith("/api/v1/worker/") or path == "/api/v1/health":
        return False
    return method in ("post", "put", "patch", "delete") or path.startswith(_ADMIN_PATHS)


class _App(FastAPI):
    """The app; its OpenAPI schema lists toolship's real error responses, not FastAPI's 422."""

    auth = False  # are tokens asked for (a 401 on every protected route)
    rate_limited = False  # access.rate_limit_per_second (a 429 on every limited route)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema:
            return self.openapi_schema
        schema = get_openapi(
            title=self.title, version=self.version, description=self.description, routes=self.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        components["ErrorResponse"] = ErrorResponse.model_json_schema()
        for path, operations in schema.get("paths", {}).items():
            for method, op in operations.items():
                self._document(path, method, op)
        add_links(schema)
        self.openapi_schema = schema
        return schema

    def _document(self, path: str, method: str, op: dict[str, Any]) -> None:
        """The error responses one operation really gives."""
        responses = op.setdefault("responses", {})
        responses.pop("422", None)
        if path.startswith(TRS_PREFIX):  # TRS's own Error shape, as api/trs.py says
            if not self.auth:
                responses.pop("401", None)
            return
        if op.get("parameters") or op.get("requestBody"):
            responses["400"] = _error_response("The request is invalid; detail says why")
        if op.get("requestBody"):
            responses["413"] = _error_response("The body is over limits.max_body_bytes")
        if self.rate_limited and not exempt(path):
            why = "Over access.rate_limit_per_second; Retry-After says when to retry"
            responses.setdefault("429", _error_response(why))
        if self.auth and path != "/api/v1/health":
            responses["401"] = _error_response("Missing or wrong bearer token")
        if _role_checked(method, path):
            responses["403"] = _error_response(
                "The caller's role does not allow this; detail names the role needed"
            )
        if "{" in path:
            responses["404"] = _error_response(_missing(path))


def create_app(
    settings: Settings,
    *,
    tokens: list[str] | None = None,
    embedded: bool = False,
    backend: BackendFactory = make_backend,
    images: Callable[[ImageSettings], ImageTools] = Images,
    scanner: Scanner | None = None,
) -> FastAPI:
    """The app; ``backend`` builds the compute backend the engine is handed, ``images`` the
    image tools of the catalog and the trust policy, ``scanner`` what makes SBOMs (syft)
    (tests: fakes)."""
    auth = Authenticator(tokens or [])
    if settings.access.oidc.issuer:  # checked now: settings that weaken it stop the start
        auth.verifiers.append(OidcVerifier(settings.access.oidc))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        secure_home(settings)
        store = Store.open(
            settings.database_url,
            sealer=Sealer.from_file(settings.home / SEALER),
            busy_timeout=settings.database.busy_timeout_seconds,
        )
        storage = make_registry(
            settings.storage,
            excluded=settings.own_files,
            reader=settings.task_user,
            owner=settings.output_owner,
        )
        policy = resolve_policy(settings.policy, embedded=embedded)
        catalog = CatalogStore(store.engine)
        tools = images(settings.images)
        trust = ImageTrust(settings.images, catalog, tools)
        engine = Engine(
            settings, store, storage, backend(settings, storage), policy, trust, catalog
        )
        # Adopted by another replica, this one stopped its engine: the server exits too.
        engine.fenced = lambda: os.kill(os.getpid(), signal.SIGTERM)
        sbom_maker = Sboms(
            SbomStore(store.engine),
            scanner or Syft(settings.images.sbom_timeout_seconds),
            tools,
            automatic=settings.images.sboms_on_use,
        )
        engine.final_hooks.append(sbom_maker.after_task)
        services = Catalog(
            catalog,
            settings.images,
            tools,
            registered=lambda v: sbom_maker.later(ImageUse(0, v.image, v.digest, v.image_id)),
        )
        user_store = UserStore(store.engine)
        auth.verifiers.append(users.UserTokens(user_store))
        app.state.toolship = AppState(
            settings=settings,
            store=store,
            engine=engine,
            storage=storage,
            catalog=catalog,
            services=services,
            builds=Builds(
                services,
                tools,
                settings.home / "builds",
                limits=BuildLimits.from_settings(settings),
                at_once=settings.images.builds_at_once,
            ),
            users=user_store,
            events=EventLog(store.engine),
            embedded=embedded,
            sboms=sbom_maker,
        )
        # Streamed responses (log routes) start an anyio task group: the first one loads
        # anyio's asyncio backend, tens of ms with the event loop stalled; load it now.
        async with anyio.create_task_group():
            pass
        await engine.start()
        # What start-up loaded (hundreds of thousands of objects: FastAPI, SQLAlchemy,
        # botocore's models) is there for good: kept out of the collector, a full
        # collection no longer stalls every request for ~100 ms now and then.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            sbom_maker.close()
            await engine.stop()
            store.close()

    app = _App(
        title="toolship",
        version=__version__,
        description="GA4GH TES v1.1 at /ga4gh/tes/v1 (and /v1); toolship's own API at /api/v1.",
        lifespan=lifespan,
    )
    # Who proved to be whom: a login event once an hour per principal and address.
    protected = [Depends(auth), Depends(events.Logins())]
    # TES 1.0's path, which TES 1.0 clients (py-tes 0.4) ask, answered in TES 1.0's shape;
    # it must come before /v1/tasks/{id}.
    app.add_api_route(
        "/v1/tasks/service-info",
        tes.get_legacy_service_info,
        methods=["GET"],
        dependencies=protected,
        include_in_schema=False,
    )
    for prefix in TES_PREFIXES:
        app.include_router(
            tes.router, prefix=prefix, dependencies=protected, include_in_schema=prefix != "/v1"
        )
    app.include_router(native.router, dependencies=protected)
    app.include_router(outputs.router, dependencies=protected)
    app.include_router(batches.router, dependencies=protected)
    app.include_router(sboms.router, dependencies=protected)
    app.include_router(cache.router, dependencies=protected)
    app.include_router(reruns.router, dependencies=protected)
    app.include_router(services.router, dependencies=protected)
    app.include_router(audit.router, dependencies=protected)
    app.include_router(provenance.router, dependencies=protected)
    app.include_router(users.router, dependencies=protected)
    app.include_router(events.router, dependencies=protected)
    app.include_router(quota.router, dependencies=protected)
    app.include_router(trs.router, prefix=TRS_PREFIX, dependencies=protected)
    if embedded:
        app.include_router(native.embedded_only, dependencies=protected)
    app.include_router(native.public)
    # Remote workers authenticate with their task's own token, not the users' tokens.
    app.include_router(worker.router)

    app.auth = auth.enabled
    app.state.authenticator = auth  # the web UI's login checks pasted tokens with it
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_body_bytes)
    access = settings.access
    if access.rate_limit_per_second > 0:  # outermost: refused before a body is read
        app.rate_limited = True
        buckets = Buckets(access.rate_limit_per_second, access.rate_limit_burst)
        app.add_middleware(RateLimit, buckets=buckets)
    metrics.install(app, settings, protected)  # last: its timing covers the middleware too

    @app.exception_handler(ToolshipError)
    async def _toolship_error(_request: Request, exc: ToolshipError) -> JSONResponse:
        # RFC 6750: a 401 says which scheme the server takes.
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(DatabaseFailure)
    async def _database(_request: Request, exc: DatabaseFailure) -> JSONResponse:
        log.warning("the database is unavailable: %s", exc.orig)
        failed = unavailable(exc, settings.database_url)
        return JSONResponse({"detail": failed.message}, status_code=failed.status_code)

    @app.exception_handler(HTTPException)
    async def _no_route(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith(TRS_PREFIX):
            return trs.route_error(request, exc)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); see the server log"},
            status_code=500,
        )

    return app
