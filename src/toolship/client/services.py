"""The services catalog's half of the SDK: :class:`Services`, mixed into
:class:`toolship.client.Client`, holds its requests — the catalog (list, show, register,
deprecate), builds (pack a folder, upload, follow the log) and runs, sweeps and maps of
a service (ports and parameters by name, local paths as file:// URLs) — so that a
reader of the tasks' and batches' client need not read them, and the other way round.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypedDict, Unpack, cast
from urllib.parse import quote

from toolship.buildcontext import pack
from toolship.client.base import BaseClient
from toolship.client.handles import Batch, Task
from toolship.errors import BuildFailed, InvalidRequest
from toolship.models import CreateTaskResponse
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
    Pairs,
    TaskArguments,
    batch_fields,
    build_task,
    grid,
    local_url,
    task_template,
)

if TYPE_CHECKING:
    from toolship.client.core import Client

SERVICES = "/api/v1/services"
BUILDS = "/api/v1/builds"
_TAIL_LINES = 30  # of a failed build's log, in the error when nobody watched the log
_LONGEST_LINE = 4096  # bytes of a line kept for that tail
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


class Services(BaseClient):
    """The services catalog's requests; :class:`toolship.client.Client` is the one class
    they are mixed into, and the handles they return hold it."""

    def _client(self) -> Client:
        # Client is the only class that inherits this one, so self is a Client: the
        # handles returned hold it, and a service's batch goes through its create_batch.
        return cast("Client", self)

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
        arguments of :meth:`Client.submit` (resources, extra ``inputs`` and ``outputs`` by
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
        return Task(self._client(), created.id)

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
        return self._client().create_batch({"service": body, "params": table, **batch})

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
        ``reduce`` is :meth:`Client.map`'s ``(image, command)``, or a task document
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
        return self._client().create_batch({**doc, **batch})

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
