"""What an image's labels say about the service it holds (pure: labels in, a description out).

Three namespaces are read together; for the name, version and description toolship's
own wins over GEF's, which wins over the OCI annotations:

- GEF's ``eudat.gef.service.*``, read as GEF's ``NewServiceFromImage`` reads them, so that
  an image built for GEF registers unchanged: ports numbered ``input.<N>``/``output.<N>``
  keep the numeric order of N, a port without a path is dropped, unknown keys are
  ignored.  A ``url`` input (the default type) is a directory the URL is staged into; a
  ``string`` input is a directory holding one file, ``filename``, with the value.  An
  output is a directory.  GEF runs the image's CMD.
- The OCI annotations ``org.opencontainers.image.*``: the title names the service.
- toolship's ``toolship.service.*``: typed ports and parameters, a command template,
  default resources.  An image's labels come back from its config as a map, without
  their order, so toolship's ports and parameters are ordered by name.  Unknown keys in
  this namespace are refused: a typo would otherwise change what the service does.

Every port also has a positional key (``input1``, ``output1``, … in the order above),
which users may type instead of its name.  Problems are collected and refused together,
each naming its label and the fix, when the image is registered, not when it runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from toolship.catalog.values import coerce, parse_bool, parse_int, parse_real, placeholders
from toolship.errors import InvalidRequest
from toolship.models import check_container_path
from toolship.services import (
    InputPort,
    OutputPort,
    Parameter,
    ParamKind,
    PortKind,
    ServiceInterface,
)
from toolship.units import parse_duration, parse_size_gb

__all__ = [
    "COMMAND_LABEL",
    "GEF_PREFIX",
    "OCI_PREFIX",
    "PREFIX",
    "Described",
    "read_labels",
]

GEF_PREFIX = "eudat.gef.service."
OCI_PREFIX = "org.opencontainers.image."
PREFIX = "toolship.service."
COMMAND_LABEL = PREFIX + "command"

_T = TypeVar("_T")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_FIELDS = {
    "input": ("type", "path", "required", "default", "filename", "description"),
    "param": ("type", "required", "default", "min", "max", "choices", "description"),
    "output": ("type", "path", "description"),
}
_SCALARS = ("name", "version", "description", "command", "workdir")
_RESOURCES = ("cpu", "memory", "disk", "timeout")
_FORMS = (
    "toolship's labels are name, version, description, command, workdir, "
    "resources.{cpu,memory,disk,timeout}, "
    "input.NAME.{type,path,required,default,filename,description}, "
    "param.NAME.{type,required,default,min,max,choices,description} and "
    "output.NAME.{type,path,description}"
)


@dataclass(frozen=True)
class Described:
    """A service as its labels describe it; ``name``/``version`` None: no label gave one."""

    name: str | None
    version: str | None
    description: str
    interface: ServiceInterface
    oci: dict[str, str] = field(default_factory=dict)

    @property
    def own_command(self) -> bool:
        """Is the command toolship's template (else the image's CMD, run as it is)?"""
        return self.interface.template


class _Problems(list[str]):
    def check(self, label: str, action: Callable[[], _T]) -> _T | None:
        """Run ``action``; a ValueError it raises becomes a problem of ``label``."""
        try:
            return action()
        except ValueError as exc:
            self.append(f"{label}: {exc}")
            return None


def read_labels(labels: Mapping[str, str], *, cmd: Sequence[str] | None = None) -> Described:
    """The service that ``labels`` describe; ``cmd`` is the image's CMD (GEF runs it)."""
    problems = _Problems()
    gef = _read_gef(labels, problems)
    own = _read_own(labels, problems)
    oci = {k[len(OCI_PREFIX) :]: v for k, v in labels.items() if k.startswith(OCI_PREFIX)}
    has_own_ports = bool(own.inputs or own.outputs or own.params)
    interface = ServiceInterface(
        inputs=own.inputs if has_own_ports else gef.inputs,
        parameters=own.params,
        outputs=own.outputs if has_own_ports else gef.outputs,
        command=own.command or (list(cmd) if cmd else None),
        template=own.command is not None,
        workdir=own.workdir,
        cpu_cores=own.cpu,
        ram_gb=own.memory,
        disk_gb=own.disk,
        timeout=own.timeout,
    )
    _check_names(interface, problems)
    if own.command is not None:
        _check_template(own.command, interface, problems)
    elif own.params:
        problems.append(
            f"parameters ({', '.join(p.name for p in own.params)}) reach the tool only "
            f"through a command template: add {COMMAND_LABEL}, e.g. "
            f'["tool", "--{own.params[0].name}={{{own.params[0].name}}}"]'
        )
    if problems:
        raise InvalidRequest("the image's labels cannot describe a service: " + "; ".join(problems))
    title, version, text = (
        oci.pop("title", None),
        oci.pop("version", None),
        oci.pop("description", ""),
    )
    return Described(
        name=own.scalars.get("name") or gef.name or title or None,
        version=own.scalars.get("version") or gef.version or version or None,
        description=own.scalars.get("description") or gef.description or text,
        interface=interface,
        oci=oci,
    )


# --- GEF ------------------------------------------------------------------------------


@dataclass
class _Gef:
    name: str | None = None
    version: str | None = None
    description: str = ""
    inputs: list[InputPort] = field(default_factory=list)
    outputs: list[OutputPort] = field(default_factory=list)


def _read_gef(labels: Mapping[str, str], problems: _Problems) -> _Gef:
    gef = _Gef()
    ports: dict[str, dict[int, dict[str, str]]] = {"input": {}, "output": {}}
    for key, value in labels.items():
        if not key.startswith(GEF_PREFIX):
            continue
        head, _, rest = key[len(GEF_PREFIX) :].partition(".")
        if head in ("name", "version", "description") and not rest:
            setattr(gef, head, value)
        elif head in ports:
            number, _, what = rest.partition(".")
            if not number.isdigit():
                problems.append(
                    f"{key}: the port number {number!r} must be a whole number, "
                    f"as in {GEF_PREFIX}{head}.1.path"
                )
            elif what in ("name", "path", "type", "filename"):
                ports[head].setdefault(int(number), {})[what] = value
        # GEF ignores (and logs) any other key; so does toolship.
    numbered = [(n, f) for n, f in sorted(ports["input"].items()) if f.get("path")]
    for position, (n, fields) in enumerate(numbered, 1):
        port = _gef_input(f"{GEF_PREFIX}input.{n}", fields, f"input{position}", problems)
        if port is not None:
            gef.inputs.append(port)
    outputs = [(n, f) for n, f in sorted(ports["output"].items()) if f.get("path")]
    for position, (n, fields) in enumerate(outputs, 1):
        key, text = f"output{position}", fields["path"]
        path = problems.check(f"{GEF_PREFIX}output.{n}.path", partial(_path, text, "output path"))
        if path is not None:
            gef.outputs.append(OutputPort(name=fields.get("name") or key, key=key, path=path))
    return gef


def _gef_input(
    label: str, fields: dict[str, str], key: str, problems: _Problems
) -> InputPort | None:
    path = problems.check(f"{label}.path", lambda: _path(fields["path"], "input path"))
    kind_text = fields.get("type", "").strip().lower() or "url"
    filename = fields.get("filename") or None
    if kind_text not in ("url", "string"):
        problems.append(
            f"{label}.type: {fields['type']!r} is not a GEF input type; use url (a URL staged "
            "into the directory at path) or string (a value written to path/filename)"
        )
        return None
    kind = PortKind.DIRECTORY if kind_text == "url" else PortKind.STRING
    if kind is PortKind.STRING and filename is None:
        problems.append(
            f"{label}: a string input needs {label}.filename, the file inside {label}.path "
            "that receives the value (GEF fails every job without it)"
        )
        return None
    if filename is not None:
        problems.check(f"{label}.filename", lambda: _filename(filename))
    if not isinstance(path, str):
        return None
    return InputPort(
        name=fields.get("name") or key, key=key, kind=kind, path=path, filename=filename
    )


# --- toolship's own namespace -----------------------------------------------------------


@dataclass
class _Own:
    scalars: dict[str, str] = field(default_factory=dict)
    inputs: list[InputPort] = field(default_factory=list)
    params: list[Parameter] = field(default_factory=list)
    outputs: list[OutputPort] = field(default_factory=list)
    command: list[str] | None = None
    workdir: str | None = None
    cpu: int | None = None
    memory: float | None = None
    disk: float | None = None
    timeout: str | None = None


_Groups = dict[str, dict[str, dict[str, str]]]  # input|param|output -> NAME -> field -> value


def _read_own(labels: Mapping[str, str], problems: _Problems) -> _Own:
    own = _Own()
    groups, resources = _sort_own(labels, own.scalars, problems)
    for position, name in enumerate(sorted(groups["input"]), 1):
        port = _own_input(name, groups["input"][name], f"input{position}", problems)
        if port is not None:
            own.inputs.append(port)
    for name in sorted(groups["param"]):
        param = _own_param(name, groups["param"][name], problems)
        if param is not None:
            own.params.append(param)
    for position, name in enumerate(sorted(groups["output"]), 1):
        out = _own_output(name, groups["output"][name], f"output{position}", problems)
        if out is not None:
            own.outputs.append(out)
    _read_runtime(own, resources, problems)
    return own


def _sort_own(
    labels: Mapping[str, str], scalars: dict[str, str], problems: _Problems
) -> tuple[_Groups, dict[str, str]]:
    """toolship's labels by what they describe: scalars, ports and parameters, resources."""
    groups: _Groups = {k: {} for k in _FIELDS}
    resources: dict[str, str] = {}
    for key, value in labels.items():
        if not key.startswith(PREFIX):
            continue
        parts = key[len(PREFIX) :].split(".")
        if len(parts) == 1 and parts[0] in _SCALARS:
            scalars[parts[0]] = value
        elif len(parts) == 2 and parts[0] == "resources" and parts[1] in _RESOURCES:
            resources[parts[1]] = value
        elif len(parts) == 3 and parts[0] in _FIELDS and parts[2] in _FIELDS[parts[0]]:
            if NAME.fullmatch(parts[1]):
                groups[parts[0]].setdefault(parts[1], {})[parts[2]] = value
            else:
                problems.append(
                    f"{key}: {parts[1]!r} is not a valid name; names start with a letter, "
                    "then letters, digits, _ or -"
                )
        else:
            problems.append(f"{key} is not a label toolship knows; {_FORMS}")
    return groups, resources


def _read_runtime(own: _Own, resources: dict[str, str], problems: _Problems) -> None:
    """The command template, the workdir and the default resources."""
    if "command" in own.scalars:
        own.command = problems.check(COMMAND_LABEL, lambda: _command(own.scalars["command"]))
    if "workdir" in own.scalars:
        own.workdir = problems.check(
            PREFIX + "workdir", lambda: _path(own.scalars["workdir"], "workdir")
        )
    label = PREFIX + "resources."
    if "cpu" in resources:
        own.cpu = problems.check(label + "cpu", lambda: _cores(resources["cpu"]))
    if "memory" in resources:
        own.memory = problems.check(label + "memory", lambda: _gb(resources["memory"]))
    if "disk" in resources:
        own.disk = problems.check(label + "disk", lambda: _gb(resources["disk"]))
    if "timeout" in resources:
        own.timeout = problems.check(label + "timeout", lambda: _timeout(resources["timeout"]))


def _own_input(
    name: str, fields: dict[str, str], key: str, problems: _Problems
) -> InputPort | None:
    label = f"{PREFIX}input.{name}"
    before = len(problems)
    kind = problems.check(f"{label}.type", lambda: _port_kind(fields.get("type"), inputs=True))
    path = _required_path(label, fields, "input path", problems)
    required = _required_flag(label, fields, problems)
    filename = fields.get("filename") or None
    if filename is not None:
        if kind is PortKind.FILE:
            problems.append(
                f"{label}.filename: filename is for directory and string inputs; "
                f"a file input's {label}.path names the file itself"
            )
        problems.check(f"{label}.filename", lambda: _filename(filename))
    if kind is None or path is None or len(problems) > before:
        return None
    return InputPort(
        name=name,
        key=key,
        kind=kind,
        path=path,
        required=bool(required),
        default=fields.get("default"),
        filename=filename,
        description=fields.get("description", ""),
    )


def _own_output(
    name: str, fields: dict[str, str], key: str, problems: _Problems
) -> OutputPort | None:
    label = f"{PREFIX}output.{name}"
    before = len(problems)
    kind = problems.check(f"{label}.type", lambda: _port_kind(fields.get("type"), inputs=False))
    path = _required_path(label, fields, "output path", problems)
    if kind is None or path is None or len(problems) > before:
        return None
    return OutputPort(
        name=name,
        key=key,
        kind=kind,
        path=path,
        description=fields.get("description", ""),
    )


def _own_param(name: str, fields: dict[str, str], problems: _Problems) -> Parameter | None:
    label = f"{PREFIX}param.{name}"
    before = len(problems)
    kind = problems.check(f"{label}.type", lambda: _param_kind(fields))
    required = problems.check(
        f"{label}.required", lambda: parse_bool(fields.get("required", "false"))
    )
    if not isinstance(kind, ParamKind) or len(problems) > before:
        return None
    bounds = _bounds(label, kind, fields, problems)
    choices = [c.strip() for c in fields.get("choices", "").split(",") if c.strip()]
    if kind is ParamKind.CHOICE and not choices:
        problems.append(f"{label}.choices is missing: list the values, e.g. {label}.choices=a,b")
    elif kind is not ParamKind.CHOICE and "choices" in fields:
        problems.append(
            f"{label}.choices: choices are only for choice parameters; "
            f"add {label}.type=choice or leave the choices out"
        )
    if len(problems) > before or bounds is None:
        return None
    param = Parameter(
        name=name,
        kind=kind,
        required=bool(required),
        minimum=bounds[0],
        maximum=bounds[1],
        choices=choices,
        description=fields.get("description", ""),
    )
    if "default" in fields:
        if required:
            problems.append(
                f"{label}.default: a required parameter needs no default; "
                "drop one of the two labels"
            )
            return None
        default = problems.check(f"{label}.default", lambda: coerce(param, fields["default"]))
        if default is None:
            return None
        return param.model_copy(update={"default": default})
    return param


def _bounds(
    label: str, kind: ParamKind, fields: dict[str, str], problems: _Problems
) -> tuple[float | None, float | None] | None:
    if kind not in (ParamKind.INT, ParamKind.FLOAT):
        if "min" in fields or "max" in fields:
            problems.append(f"{label}: min and max are for int and float parameters")
            return None
        return (None, None)
    low = (
        problems.check(f"{label}.min", lambda: _number(fields["min"])) if "min" in fields else None
    )
    high = (
        problems.check(f"{label}.max", lambda: _number(fields["max"])) if "max" in fields else None
    )
    if ("min" in fields and low is None) or ("max" in fields and high is None):
        return None
    if isinstance(low, float) and isinstance(high, float) and low > high:
        problems.append(f"{label}: its min {low:g} is above its max {high:g}")
        return None
    return (low, high)


# --- names and the command template --------------------------------------------------


def _check_names(interface: ServiceInterface, problems: _Problems) -> None:
    """Names users type must point at one thing: within --in, within --out, in a template."""
    for ports in (interface.inputs, interface.outputs):
        seen: dict[str, str] = {}
        for port in ports:
            for word in dict.fromkeys((port.name, port.key)):
                if word in seen and seen[word] != port.key:
                    problems.append(
                        f"{word!r} names two ports ({seen[word]} and {port.key}); "
                        "give each port its own name"
                    )
                seen[word] = port.key


def _names(interface: ServiceInterface) -> list[tuple[str, str]]:
    names = [(f"input {p.key}", p.name) for p in interface.inputs]
    names += [(f"parameter {p.name}", p.name) for p in interface.parameters]
    names += [(f"output {p.key}", p.name) for p in interface.outputs]
    names += [(f"input {p.key}", p.key) for p in interface.inputs]
    names += [(f"output {p.key}", p.key) for p in interface.outputs]
    return names


def _check_template(command: list[str], interface: ServiceInterface, problems: _Problems) -> None:
    """Each placeholder names one port or parameter (its name, or a port's key)."""
    owners: dict[str, str] = {}
    for what, name in _names(interface):
        if name in owners and owners[name] != what:
            problems.append(
                f"{name!r} names two things ({owners[name]} and {what}); "
                "inputs, parameters and outputs need different names in a command template"
            )
        owners.setdefault(name, what)
    known = set(owners)
    for arg in command:
        try:
            names = placeholders(arg)
        except ValueError as exc:
            problems.append(f"{COMMAND_LABEL}: {exc}")
            continue
        for name in names:
            if name not in known:
                problems.append(
                    f"{COMMAND_LABEL}: {{{name}}} names no port or parameter; the names are "
                    f"{', '.join(sorted(known)) or 'none (no ports or parameters)'}; "
                    "write {{ and }} for a literal brace"
                )


# --- label values ---------------------------------------------------------------------------


def _number(text: str) -> float:
    number = parse_real(text)
    if number is None:
        raise ValueError(f"{text!r} is not a number")
    return number


def _path(text: str, what: str) -> str:
    return check_container_path(text.strip(), what)


def _required_path(
    label: str, fields: dict[str, str], what: str, problems: _Problems
) -> str | None:
    if not fields.get("path"):
        problems.append(f"{label}.path is missing: say where the port is inside the container")
        return None
    return problems.check(f"{label}.path", lambda: _path(fields["path"], what))


def _required_flag(label: str, fields: dict[str, str], problems: _Problems) -> bool:
    has_default = "default" in fields
    if "required" not in fields:
        return not has_default
    required = problems.check(f"{label}.required", lambda: parse_bool(fields["required"]))
    if required and has_default:
        problems.append(
            f"{label}.default: a required input needs no default; drop one of the two labels"
        )
    return bool(required)


def _filename(text: str) -> str:
    if not text or text in (".", "..") or "/" in text or "\x00" in text:
        raise ValueError(f"{text!r} must be a plain file name, without '/'")
    return text


def _port_kind(text: str | None, *, inputs: bool) -> PortKind:
    word = (text or "file").strip().lower()
    kinds = ("file", "directory", "string") if inputs else ("file", "directory")
    if word not in kinds:
        listed = "file, directory or string" if inputs else "file or directory"
        raise ValueError(f"{text!r} is not {listed}")
    return PortKind(word)


def _param_kind(fields: dict[str, str]) -> ParamKind:
    default = "choice" if "choices" in fields else "string"
    word = fields.get("type", default).strip().lower()
    try:
        return ParamKind(word)
    except ValueError:
        raise ValueError(
            f"{fields['type']!r} is not a parameter type; use string, int, float, bool or choice"
        ) from None


def _command(text: str) -> list[str]:
    try:
        command = json.loads(text)
    except json.JSONDecodeError:
        command = None
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise ValueError(
            f"{text!r} is not a JSON array of strings; write e.g. "
            '["tool", "--top={top}", "{text}"]'
        )
    return command


def _cores(text: str) -> int:
    cores = parse_int(text)
    if cores is None or cores < 1:
        raise ValueError(f"{text!r} is not a number of cores; write a whole number, e.g. 2")
    return cores


def _gb(text: str) -> float:
    return round(parse_size_gb(text), 6)


def _timeout(text: str) -> str:
    return f"{parse_duration(text):g}s"
