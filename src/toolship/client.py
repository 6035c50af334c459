"""The Python SDK: ``toolship.Client`` talks to a toolship server over HTTP (httpx).

With no server given (argument or ``TOOLSHIP_SERVER``) it starts — or reuses —
the local embedded server, exactly as the CLI does.  Argument names match the
CLI's options::

    from toolship import Client

    client = Client()
    task = client.run("localhost/toolship-busybox", ["sh", "-c", "echo hi"])
    print(task.state, task.logs())
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from toolship.buildcontext import pack
from toolship.errors import (
    BY_STATUS,
    BuildFailed,
    InvalidRequest,
    ServerUnavailable,
    ToolshipError,
)
from toolship.models import (
    REPLY,
    BatchInfo,
    BatchList,
    BatchReport,
    BatchRequest,
    CancelBatchResponse,
    CreateBatchResponse,
    CreateTaskResponse,
    ListTasksResponse,
    OutputFileLog,
    ServiceInfo,
    TaskDetails,
    TaskView,
    TaskWait,
    View,
)
from toolship.models import Task as TesTask
from toolship.services import (
    BatchService,
    BuildInfo,
    BuildState,
    PortKind,
    RegisterImage,
    ServiceList,
    ServiceRun,
    ServiceVersion,
    ServiceVersions,
)
from toolship.spec import (
    BatchArguments,
    MemberArguments,
    Pairs,
    TaskArguments,
    batch_fields,
    build_task,
    grid,
    local_url,
    task_template,
)
from toolship.states import TaskState, is_final

__all__ = ["Batch", "Client", "ServiceArguments", "ServiceBatchArguments", "Task"]

TES = "/ga4gh/tes/v1"
SERVICES = "/api/v1/services"
BUILDS = "/api/v1/builds"
_TAIL_LINES = 30  # of a failed build's log, in the error when nobody watched the log
_LONGEST_LINE = 4096  # bytes of a line kept for that tail
M = TypeVar("M", bound=BaseModel)
Query = Mapping[str, str | int | float | bool | Sequence[str]]
Values = Mapping[str, str | int | float | bool] | Sequence[str] | None  # a service's parameters


class ServiceArguments(TypedDict, total=False):
    """Which run of a service: :meth:`Client.run_service`'s keywords (the CLI's
    NAME@VERSION, --in, --param and --out)."""

    version: str | None
    in_ports: Pairs
    parameters: Values
    out_ports: Pairs


class ServiceBatchArguments(ServiceArguments, TaskArguments, BatchArguments, total=False):
    """What :meth:`Client.sweep_service` and :meth:`Client.map_service` take besides their
    own: the run's, the members' task arguments (``params`` are backend parameters here,
    as for :meth:`Client.run_service`: the rows are positional) and the batch's."""


class Task:
    """A handle on one task of a server."""

    def __init__(self, client: Client, task_id: str) -> None:
        self.client = client
        self.id = task_id

    def __repr__(self) -> str:
        return f"Task({self.id!r})"

    @property
    def state(self) -> TaskState:
        return self.client.get(self.id).state or TaskState.UNKNOWN

    def info(self, view: View | str = View.FULL) -> TaskView:
        """The TES task in the given view."""
        return self.client.get(self.id, view=view)

    def wait(self, timeout: float | None = None) -> TaskState:
        """Block until the task is final (or ``timeout`` seconds pass); return its state."""
        return self.client.wait(self.id, timeout=timeout)

    def logs(self, stream: str = "stdout", executor: int | None = None) -> str:
        """The full stdout (or stderr) of the latest attempt, as text."""
        data = b"".join(self.client.logs(self.id, stream=stream, executor=executor))
        return data.decode("utf-8", errors="replace")

    @property
    def outputs(self) -> list[OutputFileLog]:
        """Output files of the latest attempt: ``url``, ``path``, ``size_bytes``."""
        logs = self.info(View.BASIC).logs
        return list(logs[-1].outputs) if logs else []

    @property
    def exit_codes(self) -> list[int]:
        logs = self.info(View.BASIC).logs
        return [ex.exit_code for ex in logs[-1].logs] if logs else []

    def cancel(self) -> None:
        self.client.cancel(self.id)


class Batch:
    """A handle on a batch (sweep, map or task list) of a server."""

    def __init__(self, client: Client, batch_id: str, task_ids: Sequence[str] = ()) -> None:
        self.client = client
        self.id = batch_id
        self.task_ids = list(task_ids)

    def __repr__(self) -> str:
        return f"Batch({self.id!r})"

    def info(self) -> BatchInfo:
        """Size, aggregated state and member counts by state."""
        return self.client.batch_info(self.id)

    @property
    def state(self) -> TaskState:
        return self.info().state

    def tasks(self, view: View | str = View.BASIC) -> Iterator[TaskView]:
        return self.client.tasks(batch=self.id, view=view)

    def wait(self, timeout: float | None = None) -> BatchInfo:
        """Block until no member is queued or running (or ``timeout``); return the info."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.1
        while True:
            info = self.info()
            if not info.active:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                return info
            time.sleep(pause)
            pause = min(1.0, pause * 1.5)

    def cancel(self) -> int:
        return self.client.cancel_batch(self.id)

    def report(self) -> BatchReport:
        return self.client.batch_report(self.id)


class Client:
    """One httpx client for one server; every method is one request (or a page loop).

    Why it is shaped so: the CLI is built on it, so the SDK and the CLI can never
    disagree about what a request means; with no URL it starts (or reuses) the
    same local embedded server the CLI uses, so a script needs no setup, and that
    server loads only then — importing the SDK loads neither FastAPI, the engine
    nor SQLAlchemy.  Tasks are described by the task arguments
    (:class:`toolship.spec.TaskArguments`, the CLI's option names); what comes
    back is typed — the TES models of :mod:`toolship.models` for tasks, its
    batch models for toolship's own API — never a bare dict.  ``Task`` and
    ``Batch`` are thin handles (an id and this client) that ask again each time.
    """

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        server = server or os.environ.get("TOOLSHIP_SERVER") or None
        token = token or os.environ.get("TOOLSHIP_TOKEN") or None
        if server is None:
            from toolship.embedded import ensure_server

            embedded = ensure_server()
            server, token = embedded.url, token or embedded.token
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=self.server, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Query | None = None,
        json: object = None,
        timeout: float | None = None,
        files: Mapping[str, tuple[str, IO[bytes], str]] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request; an error status raises the matching :class:`ToolshipError`."""
        try:
            response = self.http.request(
                method,
                path,
                params=params,
                json=json,
                files=files,
                data=data,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"cannot reach toolship at {self.server}: {exc}") from exc
        _raise_for(response)
        return response

    def _read(
        self,
        model: type[M],
        method: str,
        path: str,
        *,
        params: Query | None = None,
        json: object = None,
        timeout: float | None = None,
        files: Mapping[str, tuple[str, IO[bytes], str]] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> M:
        """One request, its answer read into ``model``."""
        response = self._send(
            method, path, params=params, json=json, timeout=timeout, files=files, data=data
        )
        return model.model_validate_json(response.content, context=REPLY)

    # --- tasks ------------------------------------------------------------

    def create(self, task: TesTask | Mapping[str, object]) -> Task:
        """Submit a TES task (a model or a document) as is."""
        body = (
            task.model_dump(mode="json", exclude_none=True)
            if isinstance(task, TesTask)
            else dict(task)
        )
        return Task(self, self._read(CreateTaskResponse, "POST", f"{TES}/tasks", json=body).id)

    def submit(self, image: str, command: Sequence[str], **args: Unpack[TaskArguments]) -> Task:
        """Create a task from the task arguments (the CLI's options) and return at once."""
        return self.create(build_task(image, command, **args))

    def run(self, image: str, command: Sequence[str], **args: Unpack[TaskArguments]) -> Task:
        """Like :meth:`submit`, then wait until the task is final."""
        task = self.submit(image, command, **args)
        task.wait()
        return task

    # --- batches ----------------------------------------------------------

    def create_batch(self, request: BatchRequest | Mapping[str, object]) -> Batch:
        """Submit a batch (see ``POST /api/v1/batches``) in one round trip."""
        body = (
            request.model_dump(mode="json", exclude_none=True)
            if isinstance(request, BatchRequest)
            else dict(request)
        )
        created = self._read(CreateBatchResponse, "POST", "/api/v1/batches", json=body, timeout=600)
        return Batch(self, created.id, created.task_ids)

    def sweep(
        self,
        image: str,
        command: Sequence[str],
        params: Sequence[Mapping[str, object]] | Mapping[str, Sequence[object]],
        **args: Unpack[BatchArguments],
    ) -> Batch:
        """One task per parameter row (a list of rows, or a dict of value lists = the grid).

        ``{name}`` in the command, env, name and URLs takes each row's value.
        """
        rows = grid(params) if isinstance(params, Mapping) else [dict(r) for r in params]
        batch = batch_fields(args)
        return self.create_batch(
            {"template": _template(image, command, args), "params": rows, **batch}
        )

    def map(
        self,
        image: str,
        command: Sequence[str],
        *,
        over: str,
        to: str,
        chunk: int = 1,
        reduce: tuple[str, Sequence[str]] | None = None,
        **args: Unpack[BatchArguments],
    ) -> Batch:
        """One task per object matching ``over`` (per ``chunk`` objects); outputs under ``to``.

        ``reduce=(image, command)`` adds a task that runs after every map task is
        COMPLETE, with all their outputs as a directory input.
        """
        batch = batch_fields(args)
        doc: dict[str, object] = {
            "template": _template(image, command, args),
            "map": {"over": over, "to": to, "chunk": chunk},
        }
        if reduce is not None:
            doc["reduce"] = build_task(reduce[0], reduce[1])
        return self.create_batch({**doc, **batch})

    def batch(self, batch_id: str) -> Batch:
        self.batch_info(batch_id)
        return Batch(self, batch_id)

    def batch_info(self, batch_id: str) -> BatchInfo:
        return self._read(BatchInfo, "GET", f"/api/v1/batches/{batch_id}")

    def batches(self, limit: int = 50) -> list[BatchInfo]:
        """The newest batches first."""
        return self._read(BatchList, "GET", "/api/v1/batches", params={"limit": limit}).batches

    def cancel_batch(self, batch_id: str) -> int:
        """Cancel every unfinished member; how many there were."""
        return self._read(
            CancelBatchResponse, "POST", f"/api/v1/batches/{batch_id}:cancel"
        ).canceled

    def batch_report(self, batch_id: str) -> BatchReport:
        """Per member and total wall time, CPU, peak memory and cost; a sweep's scaling."""
        return self._read(BatchReport, "GET", f"/api/v1/batches/{batch_id}/report")

    # --- tasks, continued -------------------------------------------------

    def get(self, task_id: str, view: View | str = View.MINIMAL) -> TaskView:
        """The TES task; in the MINIMAL view only ``id`` and ``state`` are set."""
        return self._read(
            TaskView, "GET", f"{TES}/tasks/{task_id}", params={"view": str(View(view))}
        )

    def task(self, task_id: str) -> Task:
        self.get(task_id)
        return Task(self, task_id)

    def details(self, task_id: str) -> TaskDetails:
        """FULL task plus toolship's own facts (runtime, isolation, work directory)."""
        return self._read(TaskDetails, "GET", f"/api/v1/tasks/{task_id}")

    def tasks(
        self,
        *,
        state: TaskState | str | None = None,
        name: str | None = None,
        tags: Pairs = None,
        batch: str | None = None,
        view: View | str = View.BASIC,
        page_size: int = 256,
    ) -> Iterator[TaskView]:
        """Every matching task, newest first, fetching page after page as you iterate."""
        params: dict[str, str | int | list[str]] = {"view": str(View(view)), "page_size": page_size}
        if batch:
            tags = [*_pair_list(tags), f"toolship.batch={batch}"]
        if state:
            params["state"] = str(TaskState(str(state).upper()))
        if name:
            params["name_prefix"] = name
        pairs = (
            list(tags.items())
            if isinstance(tags, Mapping)
            else [t.partition("=")[::2] for t in tags or []]
        )
        if pairs:
            params["tag_key"] = [k for k, _ in pairs]
            params["tag_value"] = [v for _, v in pairs]
        token: str | None = None
        while True:
            page = self._read(
                ListTasksResponse,
                "GET",
                f"{TES}/tasks",
                params={**params, **({"page_token": token} if token else {})},
            )
            yield from page.tasks
            token = page.next_page_token
            if not token:
                return

    def cancel(self, task_id: str) -> None:
        self._send("POST", f"{TES}/tasks/{task_id}:cancel")

    def wait(self, task_id: str, timeout: float | None = None) -> TaskState:
        """Block until the task is final (long-polling, no busy loop)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 60.0 if deadline is None else max(0.0, min(60.0, deadline - time.monotonic()))
            result = self._read(
                TaskWait,
                "GET",
                f"/api/v1/tasks/{task_id}/wait",
                params={"timeout": left},
                timeout=left + 30,
            )
            if is_final(result.state) or (deadline is not None and time.monotonic() >= deadline):
                return result.state

    def logs(
        self,
        task_id: str,
        *,
        stream: str = "stdout",
        executor: int | None = None,
        follow: bool = False,
        attempt: int | None = None,
    ) -> Iterator[bytes]:
        """The raw bytes of a task's stdout/stderr; with ``follow``, until the task ends.

        ``attempt=1`` starts with the first attempt instead of the latest (retries follow).
        """
        params: dict[str, str | int | bool] = {"stream": stream, "follow": follow}
        if attempt is not None:
            params["attempt"] = attempt
        if executor is not None:
            params["executor"] = executor
        yield from self._stream(f"/api/v1/tasks/{task_id}/logs", params)

    def _stream(self, path: str, params: Mapping[str, str | int | bool]) -> Iterator[bytes]:
        """A streamed GET's raw bytes as they come (no timeout: a log may pause long)."""
        try:
            with self.http.stream("GET", path, params=params, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"cannot reach toolship at {self.server}: {exc}") from exc

    # --- services ---------------------------------------------------------

    def services(self, query: str | None = None) -> ServiceList:
        """The catalog: each service with its latest version (deprecated ones hidden);
        ``query`` keeps those whose name or description holds the text."""
        return self._read(ServiceList, "GET", SERVICES, params={"q": query} if query else None)

    def service(self, name: str) -> ServiceVersions:
        """Every version of a service, newest first, deprecated ones included."""
        return self._read(ServiceVersions, "GET", _service_path(name))

    def service_version(self, name: str, version: str) -> ServiceVersion:
        return self._read(ServiceVersion, "GET", _service_path(name, version))

    def register_service(
        self, image: str, *, name: str | None = None, version: str | None = None
    ) -> ServiceVersion:
        """Register an image the server can see (its local images or a registry) as a
        version pinned by digest; the same digest again gives the version it already is.

        ``name`` and ``version`` override what the image's labels say.
        """
        body = RegisterImage(image=image, name=name, version=version)
        return self._read(
            ServiceVersion, "POST", SERVICES, json=body.model_dump(exclude_none=True), timeout=600
        )

    def build_service(
        self,
        context: Path | str,
        *,
        file: str | None = None,
        name: str | None = None,
        version: str | None = None,
        network: bool = False,
        on_log: Callable[[bytes], None] | None = None,
    ) -> ServiceVersion:
        """Build an image on the server from a local folder and register it.

        The folder is packed (less what its ``.containerignore`` or ``.dockerignore``
        leaves out, see :mod:`toolship.buildcontext`) and uploaded; ``file`` is the
        Containerfile inside it (default Containerfile, then Dockerfile).  The build runs
        without a network unless ``network``.  Its log goes to ``on_log`` as it comes; a
        failed build raises :class:`toolship.BuildFailed` with the cause and the log's end.
        """
        with pack(Path(context), file) as packed:
            build = self.start_build(
                packed.archive,
                file=packed.containerfile,
                name=name,
                version=version,
                network=network,
            )
        return self.follow_build(build.id, on_log=on_log)

    def start_build(
        self,
        archive: IO[bytes],
        *,
        file: str | None = None,
        name: str | None = None,
        version: str | None = None,
        network: bool = False,
    ) -> BuildInfo:
        """Upload a packed context (a tar, gzip allowed) and start its build; return at once."""
        form = {"network": "true" if network else "false"}
        given = {"file": file, "name": name, "version": version}
        form.update({k: v for k, v in given.items() if v})
        upload = {"context": ("context.tar.gz", archive, "application/gzip")}
        return self._read(BuildInfo, "POST", BUILDS, files=upload, data=form, timeout=600)

    def build_info(self, build_id: str) -> BuildInfo:
        return self._read(BuildInfo, "GET", f"{BUILDS}/{quote(build_id, safe='')}")

    def build_log(self, build_id: str, *, follow: bool = True) -> Iterator[bytes]:
        """The build's output; with ``follow``, until the build ends."""
        yield from self._stream(f"{BUILDS}/{quote(build_id, safe='')}/log", {"follow": follow})

    def follow_build(
        self, build_id: str, *, on_log: Callable[[bytes], None] | None = None
    ) -> ServiceVersion:
        """Hand the build's log to ``on_log`` until it ends; the version it registered.

        A failed build raises :class:`toolship.BuildFailed` with the cause, and the log's
        last lines when no ``on_log`` has shown them.
        """
        tail: deque[bytes] = deque(maxlen=_TAIL_LINES)
        for chunk in self.build_log(build_id, follow=True):
            if on_log is not None:
                on_log(chunk)
            _keep_tail(tail, chunk)
        pause = 0.1
        while (info := self.build_info(build_id)).state is BuildState.RUNNING:
            time.sleep(pause)  # the log ended first: the build is writing its result
            pause = min(1.0, pause * 1.5)
        if info.state is BuildState.SUCCEEDED and info.service is not None:
            return info.service
        end = b"".join(tail).decode("utf-8", errors="replace").rstrip()
        raise BuildFailed(
            f"build {build_id} failed: {info.error or 'the server gave no cause'}"
            + (f"\nthe log ends with:\n{end}" if end and on_log is None else "")
        )

    def run_service(
        self,
        service: str,
        /,
        *,
        version: str | None = None,
        in_ports: Pairs = None,
        parameters: Values = None,
        out_ports: Pairs = None,
        **args: Unpack[TaskArguments],
    ) -> Task:
        """Run a version of a service (default: its latest) as a task; return at once.

        ``in_ports`` give each input port (by its name, or input1, input2, …) a URL — a
        local path becomes a file:// URL, a folder's ending in ``/`` — or a string port
        its value; ``parameters`` are by name; ``out_ports`` give each output port (name
        or output1, …) the URL its results go to (the CLI's --in, --param and --out).
        Pairs may be ``["NAME=VALUE", ...]`` or a mapping.  ``args`` are the task
        arguments of :meth:`submit` (resources, extra ``inputs`` and ``outputs`` by
        container path, env, ``name``, tags, …) but image and command, which the service
        gives.  The server checks ports and parameters before anything runs.
        """
        given = ServiceArguments(
            version=version, in_ports=in_ports, parameters=parameters, out_ports=out_ports
        )
        request = self._service_run(service, given, task_template(**args))
        created = self._read(
            CreateTaskResponse,
            "POST",
            f"{_service_path(service)}/runs",
            json=request.model_dump(mode="json", exclude_none=True),
        )
        return Task(self, created.id)

    def sweep_service(
        self,
        service: str,
        rows: Sequence[Mapping[str, object]] | Mapping[str, Sequence[object]],
        /,
        **args: Unpack[ServiceBatchArguments],
    ) -> Batch:
        """One run of a service per row (a list of rows, or a dict of value lists = the
        grid), all of one version (default: the latest now).

        ``{name}`` in the values of ``in_ports``, ``parameters``, ``out_ports`` and in
        ``name`` takes each row's value; a swept name that is a parameter of the service
        sets it (as ``{name}``) unless ``parameters`` gives it.  The server checks every
        member's parameters before anything runs.
        """
        table = grid(rows) if isinstance(rows, Mapping) else [dict(r) for r in rows]
        batch = batch_fields(args)
        body = self._service_batch(service, args, swept={key for row in table for key in row})
        return self.create_batch({"service": body, "params": table, **batch})

    def map_service(
        self,
        service: str,
        /,
        *,
        over: str,
        to: str,
        chunk: int = 1,
        port: str | None = None,
        reduce: tuple[str, Sequence[str]] | Mapping[str, object] | None = None,
        **args: Unpack[ServiceBatchArguments],
    ) -> Batch:
        """One run of a service per object matching ``over`` (per ``chunk`` objects).

        Each member's objects are staged into the directory input port ``port`` (default:
        the service's only directory input port not given in ``in_ports``); the service's
        only directory output port, unless ``out_ports`` names it, goes to
        ``to``/map/ITEM/.  ``{item}``, ``{input}`` and ``{inputs}`` in the values of
        ``in_ports``, ``parameters``, ``out_ports`` and in ``name`` take each member's.
        ``reduce`` is :meth:`map`'s ``(image, command)``, or a task document
        (:func:`toolship.spec.build_task`'s).
        """
        batch = batch_fields(args)
        doc: dict[str, object] = {
            "service": self._service_batch(service, args, port=port),
            "map": {"over": over, "to": to, "chunk": chunk},
        }
        if isinstance(reduce, Mapping):
            doc["reduce"] = dict(reduce)
        elif reduce is not None:
            doc["reduce"] = build_task(reduce[0], reduce[1])
        return self.create_batch({**doc, **batch})

    def _service_batch(
        self,
        service: str,
        args: ServiceBatchArguments,
        *,
        port: str | None = None,
        swept: Collection[str] = (),
    ) -> dict[str, object]:
        """A batch request's ``service`` (:class:`toolship.services.BatchService`) from
        the arguments left once the batch's own are taken out."""
        run = ServiceArguments(
            version=args.pop("version", None),
            in_ports=args.pop("in_ports", None),
            parameters=args.pop("parameters", None),
            out_ports=args.pop("out_ports", None),
        )
        member: TaskArguments = args
        lowered = self._service_run(service, run, task_template(**member), swept)
        body = BatchService(name=service, port=port, **lowered.model_dump(exclude_none=True))
        return body.model_dump(mode="json", exclude_none=True)

    def _service_run(
        self,
        service: str,
        run: ServiceArguments,
        task: dict[str, object],
        swept: Collection[str] = (),
    ) -> ServiceRun:
        """A run of ``service`` pinned to a version (default: the latest), local paths
        as file:// URLs but for string ports; each ``swept`` name that is one of its
        parameters and has no value is given ``{name}``."""
        target = self._service_target(service, run.get("version"))
        strings = {
            key
            for port in (target.interface.inputs if target else [])
            if port.kind is PortKind.STRING
            for key in (port.name, port.key)
        }
        parameters = run.get("parameters")
        values: dict[str, str | int | float | bool] = (
            dict(parameters)
            if isinstance(parameters, Mapping)
            else dict(_named(parameters, "--param", "NAME=VALUE"))
        )
        for p in target.interface.parameters if target else []:
            if p.name in swept and p.name not in values:
                values[p.name] = "{" + p.name + "}"
        return ServiceRun(
            version=target.version if target else run.get("version"),
            inputs={
                port: value if port in strings else local_url(value)
                for port, value in _named(run.get("in_ports"), "--in", "PORT=URL")
            },
            parameters=values,
            outputs={
                port: local_url(value)
                for port, value in _named(run.get("out_ports"), "--out", "PORT=URL")
            },
            task=task or None,
        )

    def _service_target(self, name: str, version: str | None) -> ServiceVersion | None:
        """The version a run will use, to read its ports (None: the server will say why
        there is none)."""
        if version is not None:
            return self.service_version(name, version)
        live = [v for v in self.service(name).versions if not v.deprecated]
        return live[0] if live else None

    def deprecate_service(self, name: str, version: str) -> ServiceVersion:
        """Hide a version from the catalog and refuse new runs of it; its tasks keep it."""
        return self._read(ServiceVersion, "POST", f"{_service_path(name, version)}/deprecate")

    def service_info(self) -> ServiceInfo:
        return self._read(ServiceInfo, "GET", f"{TES}/service-info")


def _pair_list(tags: Pairs) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, Mapping):
        return [f"{k}={v}" for k, v in tags.items()]
    return list(tags)


def _template(image: str, command: Sequence[str], args: MemberArguments) -> dict[str, object]:
    return build_task(image, command, **args)


def _service_path(name: str, version: str | None = None) -> str:
    path = f"{SERVICES}/{quote(name, safe='')}"
    return path if version is None else f"{path}/versions/{quote(version, safe='')}"


def _named(values: Pairs, what: str, form: str) -> list[tuple[str, str]]:
    """``NAME=VALUE`` pairs (or a mapping) as (name, value); the value may hold ``=``."""
    if values is None:
        return []
    if isinstance(values, Mapping):
        return [(str(k), str(v)) for k, v in values.items()]
    pairs = []
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"{what} {text!r} must look like {form}")
        pairs.append((key, value))
    return pairs


def _keep_tail(tail: deque[bytes], chunk: bytes) -> None:
    """Keep the last lines of a log in ``tail`` (a line may span chunks)."""
    for line in chunk.splitlines(keepends=True):
        if tail and not tail[-1].endswith(b"\n"):
            tail[-1] = (tail[-1] + line)[-_LONGEST_LINE:]
        else:
            tail.append(line)


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json().get("detail") or response.text
    except ValueError:
        detail = response.text
    cls = BY_STATUS.get(response.status_code, ToolshipError)
    raise cls(str(detail))
