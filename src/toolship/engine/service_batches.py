"""Sweeps and maps of a service: each member is a run of it, lowered on its own — pure.

A member's values (a sweep row's; a map's ``{item}``, ``{input}``, ``{inputs}``) fill
the ``{key}`` placeholders of the run's inputs, outputs, parameter values and task
name first, so every member's parameters are checked against their types like a
single run's.  What a sweep or a map adds to each member (its index and size, a
sweep's ``cpu``/``memory``, a map's objects and output folder) comes from the same
expansion as a template's (:mod:`toolship.engine.expand`).

In a map, the objects are staged into one directory input port of the service
(``BatchService.port``, or its only directory input port), and when the run gives
no URL for the service's only directory output port, that folder is what goes to
``TO/map/ITEM/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from toolship.catalog.lower import lower
from toolship.engine.expand import expand_map, expand_sweep, substitute
from toolship.errors import InvalidRequest
from toolship.models import MapSpec
from toolship.services import (
    BatchService,
    InputPort,
    OutputPort,
    PortKind,
    ServiceRun,
    ServiceVersion,
)

__all__ = ["service_map", "service_sweep"]

_SKELETON: dict[str, Any] = {"executors": [{}]}  # what expansion adds, on an empty task
_DUMP: dict[str, Any] = {"mode": "json", "exclude_none": True}


def service_sweep(
    version: ServiceVersion, run: BatchService, rows: Sequence[Mapping[str, str]]
) -> list[dict[str, Any]]:
    """One member per row: the run with the row's values, lowered."""
    skeletons = expand_sweep(_SKELETON, rows)
    return [
        _merge(_lowered(version, run, row, (), f"params[{i}]"), skeleton, keep_name=True)
        for i, (row, skeleton) in enumerate(zip(rows, skeletons, strict=True))
    ]


def service_map(
    version: ServiceVersion, run: BatchService, urls: Sequence[str], spec: MapSpec
) -> list[dict[str, Any]]:
    """One member per group of objects, staged into the service's input port."""
    port = _map_port(version, run)
    out = _map_output(version, run)
    skeletons = expand_map(
        _SKELETON,
        urls,
        over=spec.over,
        chunk=spec.chunk,
        to=spec.to,
        input_dir=port.path,
        output_dir=out.path if out is not None else spec.output_dir,
    )
    handled = {port.key} | ({out.key} if out is not None else set())
    named = bool((run.task or {}).get("name"))
    members = []
    for i, skeleton in enumerate(skeletons):
        env = skeleton["executors"][0]["env"]
        inputs = env["TOOLSHIP_MAP_INPUTS"]
        values = {"item": env["TOOLSHIP_MAP_ITEM"], "inputs": inputs, "input": inputs.split()[0]}
        where = f"map member {i} ({skeleton['name']})"
        lowered = _lowered(version, run, values, handled, where)
        members.append(_merge(lowered, skeleton, keep_name=named))
    return members


def _substituted(run: BatchService, values: Mapping[str, str]) -> ServiceRun:
    task = dict(run.task or {})
    if isinstance(task.get("name"), str):
        task["name"] = substitute(task["name"], values)
    return ServiceRun(
        version=run.version,
        inputs={k: substitute(v, values) for k, v in run.inputs.items()},
        parameters={
            k: substitute(v, values) if isinstance(v, str) else v for k, v in run.parameters.items()
        },
        outputs={k: substitute(v, values) for k, v in run.outputs.items()},
        task=task or None,
    )


def _lowered(
    version: ServiceVersion,
    run: BatchService,
    values: Mapping[str, str],
    handled: set[str] | tuple[()],
    where: str,
) -> dict[str, Any]:
    try:
        task = lower(version, _substituted(run, values), handled=handled)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{where}: {exc}") from None
    doc: dict[str, Any] = task.model_dump(**_DUMP)
    return doc


def _merge(member: dict[str, Any], skeleton: dict[str, Any], *, keep_name: bool) -> dict[str, Any]:
    """The lowered run with what the expansion added to the skeleton."""
    executor = member["executors"][0]
    executor["env"] = {**(executor.get("env") or {}), **skeleton["executors"][0]["env"]}
    if skeleton.get("resources"):
        member["resources"] = {**(member.get("resources") or {}), **skeleton["resources"]}
    for key in ("inputs", "outputs"):
        if skeleton.get(key):
            member[key] = [*(member.get(key) or []), *skeleton[key]]
    volumes = member.get("volumes") or []
    member["volumes"] = volumes + [v for v in skeleton.get("volumes", []) if v not in volumes]
    if not member["volumes"]:
        del member["volumes"]
    if not keep_name and skeleton.get("name"):
        member["name"] = skeleton["name"]
    return member


def _find(ports: Sequence[InputPort], word: str) -> InputPort | None:
    return next((p for p in ports if word in (p.name, p.key)), None)


def _map_port(version: ServiceVersion, run: BatchService) -> InputPort:
    """The directory input port a map's objects go to."""
    ports = version.interface.inputs
    folders = [p for p in ports if p.kind is PortKind.DIRECTORY]
    listed = ", ".join(f"{p.name!r} ({p.key})" for p in folders) or "none"
    if run.port is not None:
        port = _find(ports, run.port)
        if port is None or port.kind is not PortKind.DIRECTORY:
            raise InvalidRequest(
                f"service.port {run.port!r} is not a directory input port of "
                f"{version.name}@{version.version}; its directory input ports are {listed}"
            )
        return port
    free = [p for p in folders if p.name not in run.inputs and p.key not in run.inputs]
    if len(free) != 1:
        raise InvalidRequest(
            f"a map of {version.name}@{version.version} stages its objects into a directory "
            f"input port: name one with service.port (--port); its directory input ports are "
            f"{listed}"
        )
    return free[0]


def _map_output(version: ServiceVersion, run: BatchService) -> OutputPort | None:
    """The service's only directory output port, when the run gives it no URL."""
    folders = [p for p in version.interface.outputs if p.kind is PortKind.DIRECTORY]
    if len(folders) != 1:
        return None
    port = folders[0]
    return None if port.name in run.outputs or port.key in run.outputs else port
