"""Batches as data: expanding sweeps and maps into member tasks, checking dependency graphs — pure.

A sweep is a template task and a list of parameter rows; each row becomes one
member with ``{name}`` placeholders replaced in its name, command, environment,
workdir, input and output URLs and paths.  A map is a template and a list of
object URLs, grouped ``chunk`` at a time; each group becomes one member with
its objects as inputs and its own output prefix.  Nothing here does I/O: the
server lists the objects and stores the members.
"""

from __future__ import annotations

import graphlib
import json
import math
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from toolship.errors import InvalidRequest
from toolship.wildcards import first_wildcard

__all__ = [
    "RESOURCE_PARAMETERS",
    "check_graph",
    "expand_map",
    "expand_sweep",
    "map_item_names",
    "reduce_member",
    "substitute",
]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Parameter names that also set the member's resources (so a sweep can scale a tool);
# ``nodes`` too (a backend parameter, see _set_resources).
RESOURCE_PARAMETERS = {"cpu": "cpu_cores", "cpus": "cpu_cores", "memory": "ram_gb"}


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each ``{name}`` of ``values`` replaced; other braces are left alone.

    Shell and awk braces (``${HOME}``, ``{print $1}``) survive untouched unless
    their name is a parameter.
    """
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _apply(member: dict[str, Any], values: Mapping[str, str]) -> None:
    if member.get("name"):
        member["name"] = substitute(member["name"], values)
    for ex in member.get("executors", []):
        ex["command"] = [substitute(arg, values) for arg in ex.get("command", [])]
        if ex.get("env"):
            ex["env"] = {k: substitute(v, values) for k, v in ex["env"].items()}
        for key in ("workdir", "stdin", "stdout", "stderr"):
            if ex.get(key):
                ex[key] = substitute(ex[key], values)
    for item in (*member.get("inputs", []), *member.get("outputs", [])):
        for key in ("url", "path", "path_prefix", "content"):
            if item.get(key):
                item[key] = substitute(item[key], values)


def _spread(member: dict[str, Any], token: str, values: Sequence[str]) -> None:
    """Each executor argument that is exactly ``token`` becomes one argument per value."""
    for ex in member.get("executors", []):
        command = ex.get("command", [])
        if token in command:
            ex["command"] = [v for arg in command for v in (values if arg == token else [arg])]


def _copy(template: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a JSON document (several times faster than copy.deepcopy)."""
    copied: dict[str, Any] = json.loads(json.dumps(template))
    return copied


def _copy_fields(obj: Any) -> Any:
    """A copy of the containers of a JSON document; strings and numbers are shared."""
    if isinstance(obj, dict):
        return {k: _copy_fields(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copy_fields(v) for v in obj]
    return obj


def _add_volume(member: dict[str, Any], path: str) -> None:
    """Make ``path`` an (empty, writable) volume, so it exists when the tool starts."""
    volumes = member.setdefault("volumes", [])
    if path not in volumes:
        volumes.append(path)


def _set_env(member: dict[str, Any], env: Mapping[str, str]) -> None:
    for ex in member.get("executors", []):
        ex["env"] = {**(ex.get("env") or {}), **env}


def _set_resources(member: dict[str, Any], row: Mapping[str, str], index: int) -> None:
    for param, field in RESOURCE_PARAMETERS.items():
        if param not in row:
            continue
        resources = member.setdefault("resources", {})
        try:
            value = float(row[param])
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InvalidRequest(
                f"params[{index}].{param}={row[param]!r} must be a number (finite: it sets "
                f"resources.{field})"
            )
        resources[field] = int(value) if field == "cpu_cores" else value
    if "nodes" in row:  # a multi-node task's node count is a backend parameter
        text = row["nodes"].strip()
        if not text.isdigit() or int(text) < 1:
            raise InvalidRequest(
                f"params[{index}].nodes={row['nodes']!r} must be a whole number of nodes, at "
                "least 1 (it sets resources.backend_parameters.nodes)"
            )
        resources = member.setdefault("resources", {})
        resources.setdefault("backend_parameters", {})["nodes"] = str(int(text))


def expand_sweep(
    template: Mapping[str, Any], rows: Sequence[Mapping[str, str]]
) -> list[dict[str, Any]]:
    """One member per parameter row, numbered in row order."""
    if not rows:
        raise InvalidRequest("params: a sweep needs at least one row of parameters")
    size = str(len(rows))
    members = []
    for index, row in enumerate(rows):
        member = _copy_fields(template)
        _apply(member, row)
        _set_resources(member, row, index)
        _set_env(member, {"TOOLSHIP_ARRAY_INDEX": str(index), "TOOLSHIP_ARRAY_SIZE": size})
        members.append(member)
    return members


def _relative_names(urls: Sequence[str], over: str) -> list[str]:
    """Each URL's path below the pattern's fixed leading folder (``a/x.segy`` for ``raw/**``)."""
    head = over.split("://", 1)[-1]
    cut = first_wildcard(head)
    fixed = head[:cut].rsplit("/", 1)[0] + "/"
    names = []
    for url in urls:
        path = url.split("://", 1)[-1]
        names.append(path[len(fixed) :] if path.startswith(fixed) else posixpath.basename(path))
    return names


def map_item_names(names: Sequence[str], chunk: int) -> list[str]:
    """A unique, readable name per group: the object's name without extension, or chunk-N."""
    if chunk > 1:
        return [f"chunk-{i:05d}" for i in range(0, (len(names) + chunk - 1) // chunk)]
    seen: set[str] = set()
    out = []
    for i, name in enumerate(names):
        stem = posixpath.splitext(name)[0].replace("/", "-") or f"item-{i:05d}"
        if stem in seen:
            stem = f"{stem}-{i:05d}"
        seen.add(stem)
        out.append(stem)
    return out


def expand_map(
    template: Mapping[str, Any],
    urls: Sequence[str],
    *,
    over: str,
    chunk: int,
    to: str,
    input_dir: str,
    output_dir: str,
) -> list[dict[str, Any]]:
    """One member per group of ``chunk`` objects, its outputs under ``{to}/map/{item}``.

    Placeholders: ``{item}`` (the group's name), ``{input}`` (the first object's
    path in the container), ``{inputs}`` (all of them: an executor argument that is
    exactly ``{inputs}`` becomes one argument per path, as a shell would split it;
    inside a longer argument, such as ``sh -c '… {inputs}'``, they are space-separated).
    """
    if not urls:
        raise InvalidRequest(f"map.over: {over!r} matches no object; check the pattern")
    if chunk < 1:
        raise InvalidRequest("map.chunk must be at least 1")
    names = _relative_names(urls, over)
    items = map_item_names(names, chunk)
    size = str(len(items))
    members = []
    for index, item in enumerate(items):
        group = list(zip(urls, names, strict=True))[index * chunk : (index + 1) * chunk]
        paths = [posixpath.join(input_dir, name) for _, name in group]
        member = _copy(template)
        _spread(member, "{inputs}", paths)
        _apply(member, {"item": item, "input": paths[0], "inputs": " ".join(paths)})
        member["inputs"] = [
            *member.get("inputs", []),
            *(
                {"path": p, "url": u, "type": "FILE"}
                for (u, _), p in zip(group, paths, strict=True)
            ),
        ]
        member["outputs"] = [
            *member.get("outputs", []),
            {"path": output_dir, "url": f"{to.rstrip('/')}/map/{item}", "type": "DIRECTORY"},
        ]
        _add_volume(member, output_dir)
        if not member.get("name"):
            member["name"] = item
        _set_env(
            member,
            {
                "TOOLSHIP_ARRAY_INDEX": str(index),
                "TOOLSHIP_ARRAY_SIZE": size,
                "TOOLSHIP_MAP_ITEM": item,
                "TOOLSHIP_MAP_INPUTS": " ".join(paths),
            },
        )
        members.append(member)
    return members


def reduce_member(
    template: Mapping[str, Any], *, to: str, input_dir: str, output_dir: str
) -> dict[str, Any]:
    """The reduce task of a map: every map output as a directory input, its own output prefix."""
    member = _copy(template)
    base = to.rstrip("/")
    member["inputs"] = [
        *member.get("inputs", []),
        {"path": input_dir, "url": f"{base}/map", "type": "DIRECTORY"},
    ]
    if not member.get("outputs"):
        member["outputs"] = [{"path": output_dir, "url": f"{base}/reduce", "type": "DIRECTORY"}]
        _add_volume(member, output_dir)
    member.setdefault("name", "reduce")
    return member


def check_graph(after: Mapping[int, set[int]], size: int) -> None:
    """Refuse member references out of range and dependency cycles (400, naming the cycle)."""
    for child, parents in after.items():
        for parent in parents:
            if not 0 <= parent < size:
                raise InvalidRequest(
                    f"tasks[{child}]: after refers to member @{parent}, but the batch has "
                    f"members @0..@{size - 1}"
                )
            if parent == child:
                raise InvalidRequest(f"tasks[{child}] cannot run after itself")
    try:
        graphlib.TopologicalSorter({c: set(p) for c, p in after.items()}).prepare()
    except graphlib.CycleError as exc:
        cycle = " → ".join(f"@{i}" for i in reversed(exc.args[1]))
        raise InvalidRequest(
            f"the members' dependencies form a cycle ({cycle}, where → reads 'runs after'); "
            "no member of it could ever start — remove one of the `after` references"
        ) from None
