"""A run of a service, lowered to the ordinary TES task that runs it (pure).

Everything that works for tasks (staging, Slurm, batches, logs, cancel) then works for
services.  The task runs the version's pinned ``repository@sha256:…`` and carries the
``toolship.service=NAME@VERSION`` tag.  Every problem of a run (a missing input, an
unknown port or parameter, a value of the wrong type or out of bounds) is collected
and refused in one 400 that lists what is valid, before anything runs.

How ports land in the task (the same for GEF's and toolship's labels):

- a file port: the URL is staged at the port's path;
- a directory port: a URL ending in ``/`` is a whole directory, staged at the path;
  any other URL is one file staged into it, as ``path/<filename label or the URL's
  file name>`` (GEF's ``url`` inputs);
- a string port: the value itself, written to ``path`` (or ``path/<filename>``);
- an output port: delivered to the URL given; a file port given a URL ending in ``/``
  lands in that folder under its own name.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Collection, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError

from toolship.catalog.labels import COMMAND_LABEL
from toolship.catalog.values import coerce, describe_kind, fill
from toolship.errors import InvalidRequest
from toolship.models import Task
from toolship.services import (
    SERVICE_TAG,
    InputPort,
    OutputPort,
    Parameter,
    ParamKind,
    PortKind,
    ServiceInterface,
    ServiceRun,
    ServiceVersion,
)

__all__ = ["RunRefused", "lower"]

# What a run may say about its task besides the ports and parameters.
_TASK_FIELDS = ("name", "description", "tags", "resources", "inputs", "outputs", "volumes")
_EXECUTOR_FIELDS = ("env", "workdir", "stdin", "stdout", "stderr", "ignore_error")

Values = dict[str, str | None]  # placeholder -> its text (None: unset, the argument is left out)


class RunRefused(InvalidRequest):
    """A run's problems in one 400; ``problems`` keeps them apart (a form shows each by field)."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


def lower(version: ServiceVersion, run: ServiceRun, *, handled: Collection[str] = ()) -> Task:
    """The TES task that runs ``run`` of ``version``; InvalidRequest lists every problem.

    ``handled``: ports (by key) whose data the caller stages or delivers itself (a map's
    objects, its output folder): their paths fill the command, no input or output is
    made for them, and the run may not give them.
    """
    if version.deprecated:
        raise InvalidRequest(
            f"service {version.name} version {version.version} is deprecated: run a newer "
            f"version (toolship service show {shlex.quote(version.name)} lists them)"
        )
    iface = version.interface
    problems: list[str] = []
    values: Values = {}
    rest, executor = _rest(run.task or {}, problems)
    inputs = _inputs(iface.inputs, run.inputs, values, problems, handled)
    outputs = _outputs(iface.outputs, run.outputs, values, problems, handled)
    _parameters(iface.parameters, run.parameters, values, problems)
    command = _command(version, values, problems)
    tags = rest.get("tags") or {}
    if isinstance(tags, dict) and SERVICE_TAG in tags:
        problems.append(
            f"tag {SERVICE_TAG} is set by toolship (to NAME@VERSION of the service); "
            "choose another key"
        )
    if problems:
        raise RunRefused(
            f"cannot run {version.name}@{version.version}: " + "; ".join(problems), problems
        )
    executor = {
        "image": version.image,
        "command": command,
        **({"workdir": iface.workdir} if iface.workdir else {}),
        **executor,
    }
    doc: dict[str, Any] = {
        **rest,
        "name": rest.get("name") or version.name,
        "inputs": inputs + list(rest.get("inputs") or []),
        "outputs": outputs + list(rest.get("outputs") or []),
        "resources": _resources(iface, rest.get("resources")),
        "executors": [executor],
        "tags": {**tags, SERVICE_TAG: f"{version.name}@{version.version}"},
    }
    try:
        return Task.model_validate(doc)
    except ValidationError as exc:
        raise InvalidRequest(
            f"cannot run {version.name}@{version.version}: " + _validation(exc)
        ) from None


def _rest(task: Mapping[str, Any], problems: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's own task fields, and what its one executor may say (not image, command)."""
    rest: dict[str, Any] = {}
    for key, value in task.items():
        if key in _TASK_FIELDS:
            rest[key] = value
        elif key != "executors":
            problems.append(
                f"task.{key} is not a field of a service run's task; "
                f"the fields are {', '.join(_TASK_FIELDS)} and executors"
            )
    for key in ("inputs", "outputs", "volumes"):
        if key in rest and not isinstance(rest[key], list):
            problems.append(f"task.{key} must be a list")
            del rest[key]
    if "tags" in rest and not isinstance(rest["tags"], dict):
        problems.append("task.tags must be an object of strings")
        del rest["tags"]
    executors = task.get("executors") or []
    if not isinstance(executors, list) or len(executors) > 1:
        problems.append(
            "task.executors: a service run has one executor (the service's); give at most one, "
            f"with any of {', '.join(_EXECUTOR_FIELDS)}"
        )
        return rest, {}
    executor = executors[0] if executors else {}
    if not isinstance(executor, dict):
        problems.append("task.executors[0] must be an object")
        return rest, {}
    fixed = [k for k in ("image", "command") if k in executor]
    if fixed:
        problems.append(
            f"task.executors[0]: {' and '.join(fixed)} come from the service; give only "
            f"{', '.join(_EXECUTOR_FIELDS)}"
        )
    return rest, {k: v for k, v in executor.items() if k not in ("image", "command")}


# --- ports ------------------------------------------------------------------------------


def _given(
    ports: Sequence[InputPort] | Sequence[OutputPort],
    given: Mapping[str, str],
    what: str,
    problems: list[str],
) -> dict[str, str]:
    """The values given, by port key; unknown names and ports given twice are problems."""
    by_word: dict[str, InputPort | OutputPort] = {}
    for port in ports:
        by_word.setdefault(port.key, port)
    for port in ports:
        by_word.setdefault(port.name, port)
    found: dict[str, str] = {}
    seen_as: dict[str, str] = {}
    for word, value in given.items():
        match = by_word.get(word)
        if match is None:
            problems.append(
                f"no {what} port {word!r}; the {what}s are "
                + (", ".join(_show_port(p) for p in ports) or "none")
            )
        elif match.key in found:
            problems.append(
                f"{what} {match.name!r} is given twice (as {seen_as[match.key]} and as {word})"
            )
        else:
            found[match.key] = value
            seen_as[match.key] = word
    return found


def _show_port(port: InputPort | OutputPort) -> str:
    where = _value_path(port) if isinstance(port, InputPort) else port.path
    return f"{port.name!r} ({port.key}, {port.kind.value} at {where})"


def _value_path(port: InputPort) -> str:
    """Where a string port's value lands (a directory port's path otherwise)."""
    if port.kind is PortKind.STRING and port.filename:
        return posixpath.join(port.path, port.filename)
    return port.path


def _inputs(
    ports: Sequence[InputPort],
    given: Mapping[str, str],
    values: Values,
    problems: list[str],
    handled: Collection[str],
) -> list[dict[str, str]]:
    found = _given(ports, given, "input", problems)
    inputs: list[dict[str, str]] = []
    for port in ports:
        value = found.get(port.key, port.default)
        path = _value_path(port)
        for word in (port.name, port.key):
            values[word] = None if value is None else path
        if port.key in handled:
            values[port.name] = values[port.key] = path
            if port.key in found:
                problems.append(f"input {port.name!r} ({port.key}) is filled by the batch")
            continue
        if value is None:
            if port.required:
                problems.append(
                    f"input {port.name!r} ({port.key}) is required: give --in "
                    f"{shlex.quote(port.name)}="
                    + ("VALUE" if port.kind is PortKind.STRING else "URL")
                )
            continue
        staged = _stage(port, value, problems)
        if staged is not None:
            inputs.append(staged)
    return inputs


def _stage(port: InputPort, value: str, problems: list[str]) -> dict[str, str] | None:
    if port.kind is PortKind.STRING:
        return {"path": _value_path(port), "content": value, "type": "FILE"}
    if port.kind is PortKind.FILE:
        if value.endswith("/"):
            problems.append(
                f"input {port.name!r} takes a file; {value!r} ends in '/' (a directory)"
            )
            return None
        return {"path": port.path, "url": value, "type": "FILE"}
    if value.endswith("/"):
        return {"path": port.path, "url": value.rstrip("/") or value, "type": "DIRECTORY"}
    name = port.filename or _basename(value)
    if name is None:
        problems.append(
            f"input {port.name!r}: {value!r} has no file name to stage into {port.path}; "
            "end a directory's URL with '/'"
        )
        return None
    return {"path": posixpath.join(port.path, name), "url": value, "type": "FILE"}


def _basename(url: str) -> str | None:
    """The URL's last path segment, if it can be a file name."""
    name = unquote(posixpath.basename(urlsplit(url).path))
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        return None
    return name


def _outputs(
    ports: Sequence[OutputPort],
    given: Mapping[str, str],
    values: Values,
    problems: list[str],
    handled: Collection[str],
) -> list[dict[str, str]]:
    found = _given(ports, given, "output", problems)
    outputs: list[dict[str, str]] = []
    for port in ports:
        values[port.name] = values[port.key] = port.path
        url = found.get(port.key)
        if port.key in handled and url is None:
            continue
        if url is None:
            slash = "/" if port.kind is PortKind.DIRECTORY else ""
            problems.append(
                f"output {port.name!r} ({port.key}) has no URL: give --out "
                f"{shlex.quote(port.name)}=URL{slash}"
            )
        elif port.kind is PortKind.DIRECTORY:
            outputs.append({"path": port.path, "url": url.rstrip("/") or url, "type": "DIRECTORY"})
        else:
            if url.endswith("/"):
                url += posixpath.basename(port.path)
            outputs.append({"path": port.path, "url": url, "type": "FILE"})
    return outputs


# --- parameters and the command -----------------------------------------------------------


def _parameters(
    params: Sequence[Parameter],
    given: Mapping[str, str | int | float | bool],
    values: Values,
    problems: list[str],
) -> None:
    known = {p.name: p for p in params}
    for name in given:
        if name not in known:
            problems.append(
                f"no parameter {name!r}; the parameters are "
                + (", ".join(f"{p.name} ({describe_kind(p)})" for p in params) or "none")
            )
    for param in params:
        value: str | int | float | bool | None = param.default
        if param.name in given:
            try:
                value = coerce(param, given[param.name])
            except ValueError as exc:
                problems.append(f"parameter {param.name!r}: {exc}")
                continue
        elif param.required:
            problems.append(
                f"parameter {param.name!r} is required: give --param {param.name}=VALUE "
                f"({describe_kind(param)})"
            )
            continue
        values[param.name] = None if value is None else _text(param, value)


def _text(param: Parameter, value: str | int | float | bool) -> str:
    if param.kind is ParamKind.BOOL:
        return "true" if value else "false"
    return str(value)


def _command(version: ServiceVersion, values: Values, problems: list[str]) -> list[str]:
    iface: ServiceInterface = version.interface
    if iface.command is None:
        problems.append(
            f"service {version.name} has no command: the image has no CMD and no "
            f"{COMMAND_LABEL} label; add one of them to its Containerfile and register it again"
        )
        return []
    if not iface.template:
        return list(iface.command)
    filled = [fill(arg, values) for arg in iface.command]
    command = [arg for arg in filled if arg is not None]
    if not command:
        problems.append(
            f"the command of {version.name} is empty for this run: every argument of "
            f"{COMMAND_LABEL} names an unset value"
        )
    return command


def _resources(iface: ServiceInterface, given: object) -> object:
    """The run's resources, with the service's defaults for what it leaves out."""
    if given is not None and not isinstance(given, dict):
        return given  # the task's own check names it
    resources = dict(given or {})
    defaults = {"cpu_cores": iface.cpu_cores, "ram_gb": iface.ram_gb, "disk_gb": iface.disk_gb}
    for key, default in defaults.items():
        if resources.get(key) is None and default is not None:
            resources[key] = default
    params = resources.get("backend_parameters")
    if iface.timeout and (params is None or isinstance(params, dict)):
        params = dict(params or {})
        if not any(str(k).lower() == "timeout" for k in params):
            params["timeout"] = iface.timeout  # as `toolship run --timeout` sends it
        resources["backend_parameters"] = params
    return resources or None


def _validation(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {msg}")
    return "; ".join(problems)
