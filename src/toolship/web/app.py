"""Adds the web UI to the API's app: its routes, static files and error pages."""

from __future__ import annotations

import inspect

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from toolship.api.auth import Authenticator
from toolship.api.oidc import OidcVerifier
from toolship.config import Settings
from toolship.errors import ToolshipError
from toolship.web import batches, live, login, newtask, services, tasks
from toolship.web.pages import STATIC, LoginRequired, login_url, page
from toolship.web.session import Sessions

__all__ = ["install"]


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the UI under /ui from ``app`` (made by :func:`toolship.api.app.create_app`)."""
    auth: Authenticator = app.state.authenticator
    oidc = next((v for v in auth.verifiers if isinstance(v, OidcVerifier)), None)
    login_with = oidc if oidc is not None and settings.access.oidc.client_id else None
    app.state.ui_sessions = Sessions(settings.home, auth, login_with)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    for module in (login, tasks, live, batches, services, newtask):
        app.include_router(module.router)
    app.include_router(login.api_router, dependencies=[Depends(auth)])
    json_errors = app.exception_handlers[ToolshipError]

    async def errors(request: Request, exc: Exception) -> Response:
        """Pages answer errors as pages (the API's routes keep their JSON)."""
        if not request.url.path.startswith("/ui") or not isinstance(exc, ToolshipError):
            answer = json_errors(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        htmx = "hx-request" in request.headers
        if isinstance(exc, LoginRequired):
            if htmx:  # htmx follows HX-Redirect with a full page load
                return Response(status_code=401, headers={"HX-Redirect": login_url(request)})
            if request.url.path.startswith("/ui/events"):
                return JSONResponse({"detail": exc.message}, status_code=401)
            return RedirectResponse(login_url(request), status_code=303)
        if htmx:  # a fragment: htmx shows it where the request's target says
            return page(request, "_error.html", status_code=exc.status_code, error=exc.message)
        return page(request, "error.html", status_code=exc.status_code, error=exc.message)

    app.add_exception_handler(ToolshipError, errors)
