"""``GET /metrics``: this replica's figures in Prometheus' text format (docs/deploy.md).

Counts only, never a task's name, owner or URL: the tasks in the database by state,
the tasks this replica's engine holds ready to start, the attempts it started and the
tasks it ended (by final state), the bytes its attempts staged in and out, the API's
latency by method, route template and status class, and the process's own figures
(CPU, memory, file descriptors, garbage collection).  Every sample carries the label
``replica`` (``settings.replica_name``), so one dashboard tells the replicas on one
database apart.

Each app has a registry of its own, never the process-wide default: tests start many
apps in one process.  The engine knows nothing of Prometheus: it keeps plain counts
(:class:`~toolship.engine.tally.Tally`) that a collector reads when Prometheus scrapes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.routing import BaseRoute, Match, Mount, Route, replace_params
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolship.api.auth import principal
from toolship.api.state import AppState
from toolship.config import Settings
from toolship.db.store import ListFilter
from toolship.errors import Forbidden
from toolship.identity import Role
from toolship.states import TaskState

__all__ = ["install"]

# The methods a label may name; any other is "other" (a client picks the method: an
# open set of label values would grow the registry without bound).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# What a request that matched no route is labelled with (its raw path never is).
_UNMATCHED = "unmatched"


def install(app: FastAPI, settings: Settings, protected: Sequence[Any]) -> None:
    """Serve ``/metrics`` on ``app`` and time its requests from now on.

    ``protected``: the dependencies that authenticate a request (as on every route);
    ``access.metrics`` says whether they apply and which role may read.
    """
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    latency = Histogram(
        "toolship_http_request_duration_seconds",
        "Seconds from a request's arrival until its response's status was sent, by "
        "method, route template and status class (a stream counts until it starts)",
        ("method", "route", "status"),
        registry=registry,
    )
    registry.register(_Work(app))
    app.add_middleware(_Latency, histogram=latency, routes=app.router.routes)
    labelled = _Replica(registry, settings.replica_name)
    who = settings.access.metrics

    async def metrics(request: Request) -> Response:
        if who != "open":
            _may_read(request, Role.ADMIN if who == "admin" else Role.VIEWER)
        body = await asyncio.to_thread(generate_latest, labelled)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        dependencies=[] if who == "open" else list(protected),
        include_in_schema=False,
    )


def _may_read(request: Request, role: Role) -> None:
    who = principal(request)
    if not who.at_least(role):
        raise Forbidden(
            f"/metrics is for the role {role.label} or higher (access.metrics); {who.name} "
            f"is a {who.role.label}: scrape with an admin's token (the server's token "
            "file), or let viewers read it with access.metrics = 'viewer'"
        )


class _Work:
    """The database's and the engine's figures, read when Prometheus scrapes."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        state: AppState = self.app.state.toolship  # scrapes come once the lifespan began
        counts = state.store.counts(ListFilter())  # one GROUP BY over all tasks
        tasks = GaugeMetricFamily(
            "toolship_tasks",
            "Tasks in the database by state (every replica of one database says the same)",
            labels=["state"],
        )
        for s in TaskState:
            tasks.add_metric([s.value], counts.get(s, 0))
        yield tasks
        engine = state.engine
        yield GaugeMetricFamily(
            "toolship_queue_length",
            "Tasks this replica's engine holds ready to start, waiting for capacity",
            value=len(engine.core.queue),
        )
        tally = engine.tally
        yield CounterMetricFamily(
            "toolship_task_starts",
            "Attempts this replica started (a retry is another; a resumed one is not)",
            value=tally.started,
        )
        ends = CounterMetricFamily(
            "toolship_task_ends", "Final states this replica gave tasks", labels=["state"]
        )
        for final, n in tally.ended.items():
            ends.add_metric([final.value], n)
        yield ends
        staged = CounterMetricFamily(
            "toolship_staged_bytes",
            "Bytes the attempts this replica saw end copied in (stage-in) and delivered out",
            labels=["direction"],
        )
        staged.add_metric(["in"], tally.bytes_in)
        staged.add_metric(["out"], tally.bytes_out)
        yield staged


class _Replica:
    """A registry's metrics with ``replica="NAME"`` added to every sample."""

    def __init__(self, registry: CollectorRegistry, name: str) -> None:
        self.registry = registry
        self.name = name

    def collect(self) -> Iterable[Metric]:
        for metric in self.registry.collect():  # fresh objects on every scrape
            metric.samples = [
                s._replace(labels={**s.labels, "replica": self.name}) for s in metric.samples
            ]
            yield metric


class _Latency:
    """Times every HTTP request into ``histogram``, labelled by its route's template.

    The template (``/ga4gh/tes/v1/tasks/{id}``) is the route the router matched, never
    the raw path: ids in labels would make a series per task.
    """

    def __init__(self, app: ASGIApp, histogram: Histogram, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.histogram = histogram
        self.routes = routes  # the app's own (those added later too: the same list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        root = scope.get("root_path", "")  # a mount changes it on the way in
        answered = False

        async def timed(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                self._observe(scope, root, message["status"], began)
            await send(message)

        try:
            await self.app(scope, receive, timed)
        except Exception:
            if not answered:  # the server's error handler answers 500 further out
                self._observe(scope, root, 500, began)
            raise

    def _observe(self, scope: Scope, root: str, status: int, began: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "other"
        route = scope.get("route") or self._plain({**scope, "root_path": root})
        template = _UNMATCHED if route is None else _route_template(scope, route)
        self.histogram.labels(method, template, f"{status // 100}xx").observe(
            time.perf_counter() - began
        )

    def _plain(self, scope: Scope) -> BaseRoute | None:
        """The app's plain route or mount that matched (FastAPI names only its API routes;
        a path none of them has is not matched again through every included router)."""
        plain = (r for r in self.routes if isinstance(r, Route | Mount))
        return next((r for r in plain if r.matches(scope)[0] is not Match.NONE), None)


def _route_template(scope: Scope, route: BaseRoute) -> str:
    """The template of the route that answered (``/ga4gh/tes/v1/tasks/{id}``).

    FastAPI names the route of an included router by its own path (``/tasks/{id}``,
    the same route object under /ga4gh/tes/v1 and /v1): the prefix is what the request's
    path holds before the part the route matched.  toolship's prefixes are constants, so
    this never puts an id in a label; a path that does not end as the route renders
    keeps the route's own path.
    """
    if not isinstance(route, Route | Mount):
        return _UNMATCHED
    params = dict(scope.get("path_params", {}))  # replace_params takes them out
    tail, _ = replace_params(route.path_format, route.param_convertors, params)
    path: str = scope["path"]
    return path.removesuffix(tail) + route.path if path.endswith(tail) else route.path
