"""Building a TES task from the arguments users type (shared by the CLI and the SDK) — pure.

``-i PATH=URL``: PATH is inside the container (relative paths are relative to
the workdir); URL is a URL or a local path (made absolute); a URL ending in
``/`` is a directory.  ``-o PATH=URL``: PATH may hold wildcards, then URL must
end with ``/`` and each match keeps its path below the wildcard's directory.
"""

from __future__ import annotations

import csv
import itertools
import json
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toolship.errors import InvalidRequest
from toolship.models import static_dir
from toolship.units import parse_duration, parse_size_gb
from toolship.wildcards import has_wildcard

__all__ = ["DEFAULT_WORKDIR", "build_task", "grid", "read_params_file", "split_pair"]

DEFAULT_WORKDIR = "/work"

Pairs = Sequence[str] | Mapping[str, str] | None


def split_pair(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InvalidRequest(f"{what} {text!r} must look like PATH=VALUE")
    return key, value


def _pairs(values: Pairs, what: str) -> list[tuple[str, str]]:
    if values is None:
        return []
    if isinstance(values, Mapping):
        return list(values.items())
    return [split_pair(v, what) for v in values]


def _container_path(path: str, workdir: str) -> str:
    return path if path.startswith("/") else posixpath.normpath(posixpath.join(workdir, path))


def _url(value: str) -> str:
    """A URL as given, or a local path made into an absolute file:// URL."""
    if "://" in value:
        return value
    trailing = value.endswith("/")
    resolved = str(Path(value).expanduser().absolute())
    return "file://" + resolved + ("/" if trailing and resolved != "/" else "")


def _input(path: str, value: str, workdir: str) -> dict[str, Any]:
    url = _url(value)
    kind = "DIRECTORY" if url.endswith("/") else "FILE"
    if kind == "FILE" and url.startswith("file://") and Path(url[7:]).is_dir():
        kind = "DIRECTORY"
    return {"path": _container_path(path, workdir), "url": url.rstrip("/") or url, "type": kind}


def _output(path: str, value: str, workdir: str) -> dict[str, Any]:
    cpath = _container_path(path, workdir)
    url = _url(value)
    if has_wildcard(cpath):
        if not url.endswith("/"):
            raise InvalidRequest(
                f"output {path}: a wildcard output needs a directory URL ending in '/', "
                f"e.g. {path}={value.rstrip('/')}/"
            )
        return {
            "path": cpath,
            "url": url.rstrip("/"),
            "type": "FILE",
            "path_prefix": static_dir(cpath),
        }
    if url.endswith("/"):
        return {"path": cpath, "url": url.rstrip("/"), "type": "DIRECTORY"}
    return {"path": cpath, "url": url, "type": "FILE"}


def _content(path: str, value: str, workdir: str) -> dict[str, Any]:
    if value.startswith("@"):
        source = Path(value[1:]).expanduser()
        try:
            text = source.read_text()
        except OSError as exc:
            raise InvalidRequest(f"--content {path}=@{source}: {exc.strerror}") from None
    else:
        text = value
    return {"path": _container_path(path, workdir), "content": text, "type": "FILE"}


def build_task(
    image: str,
    command: Sequence[str],
    *,
    inputs: Pairs = None,
    outputs: Pairs = None,
    content: Pairs = None,
    env: Pairs = None,
    workdir: str | None = DEFAULT_WORKDIR,
    volumes: Sequence[str] = (),
    cpu: int | None = None,
    memory: str | float | None = None,
    disk: str | float | None = None,
    timeout: str | float | None = None,
    network: bool = False,
    name: str | None = None,
    tags: Pairs = None,
    runtime: str | None = None,
    priority: int | None = None,
    sync: str | None = None,
    writable_inputs: bool = False,
    retries: int | None = None,
    retry_on: str | None = None,
    after: Sequence[str] = (),
    gpus: int | None = None,
    nodes: int | None = None,
    params: Pairs = None,
) -> dict[str, Any]:
    """A TES task (JSON-ready dict) from CLI-style arguments.

    ``sync``: a folder URL staged into the workdir first and, afterwards, what the
    workdir holds is uploaded back to it (new and changed files only).
    """
    if not command:
        raise InvalidRequest("give the command to run after the image, e.g. IMAGE -- echo hi")
    wd = workdir or DEFAULT_WORKDIR
    executor: dict[str, Any] = {"image": image, "command": list(command)}
    if workdir:
        executor["workdir"] = workdir
    env_map = dict(_pairs(env, "--env"))
    if env_map:
        executor["env"] = env_map
    task: dict[str, Any] = {"executors": [executor]}
    if name:
        task["name"] = name
    ins = [_input(p, v, wd) for p, v in _pairs(inputs, "--input")]
    outs = [_output(p, v, wd) for p, v in _pairs(outputs, "--output")]
    if sync:
        folder = _url(sync if sync.endswith("/") else sync + "/").rstrip("/")
        ins.insert(0, {"path": wd, "url": folder, "type": "DIRECTORY"})
        outs.append({"path": wd, "url": folder, "type": "DIRECTORY"})
    ins += [_content(p, v, wd) for p, v in _pairs(content, "--content")]
    if ins:
        task["inputs"] = ins
    if outs:
        task["outputs"] = outs
    if volumes:
        task["volumes"] = [_container_path(v, wd) for v in volumes]
    tag_map = dict(_pairs(tags, "--tag"))
    if tag_map:
        task["tags"] = tag_map
    resources: dict[str, Any] = {}
    extra: dict[str, str] = {}
    if cpu is not None:
        resources["cpu_cores"] = cpu
    if memory is not None:
        resources["ram_gb"] = _size(memory, "--memory")
    if disk is not None:
        resources["disk_gb"] = _size(disk, "--disk")
    if timeout is not None:
        extra["timeout"] = f"{_seconds(timeout):g}s"
    if network:
        extra["network"] = "true"
    if runtime:
        extra["runtime"] = runtime
    if priority is not None:
        extra["priority"] = str(priority)
    if writable_inputs:
        extra["writable_inputs"] = "true"
    if retries is not None:
        extra["retries"] = str(retries)
    if retry_on:
        extra["retry_on"] = retry_on
    if after:
        extra["after"] = ",".join(after)
    if gpus:
        extra["gpus"] = str(gpus)
    if nodes is not None:
        extra["nodes"] = str(nodes)
    extra.update((k.lower(), v) for k, v in _pairs(params, "--param"))
    if extra:
        resources["backend_parameters"] = extra
        resources["backend_parameters_strict"] = True
    if resources:
        task["resources"] = resources
    return task


def _size(value: str | float, what: str) -> float:
    if isinstance(value, int | float):
        return float(value)
    try:
        return round(parse_size_gb(value), 6)
    except ValueError as exc:
        raise InvalidRequest(f"{what}: {exc}") from None


def _seconds(value: str | float) -> float:
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidRequest(f"--timeout: {exc}") from None


def grid(params: Sequence[str] | Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Every combination of ``name=v1,v2,...`` values (the first name varies slowest)."""
    axes: list[tuple[str, list[str]]] = []
    if isinstance(params, Mapping):
        axes = [(k, [str(v) for v in vs]) for k, vs in params.items()]
    else:
        for text in params:
            key, value = split_pair(text, "--param")
            axes.append((key, [v for v in value.split(",") if v != ""]))
    seen: set[str] = set()
    for key, values in axes:
        if not key.isidentifier():
            raise InvalidRequest(
                f"--param {key}: names are letters, digits and _ (used as {{{key}}})"
            )
        if key in seen:
            raise InvalidRequest(f"--param {key} is given twice; list its values once: a,b,c")
        if not values:
            raise InvalidRequest(f"--param {key} has no values; write {key}=v1,v2")
        seen.add(key)
    names = [k for k, _ in axes]
    return [
        dict(zip(names, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))
    ]


def read_params_file(path: str | Path) -> list[dict[str, str]]:
    """Parameter rows from a CSV file (header = names) or JSON Lines (one object per line)."""
    source = Path(path).expanduser()
    try:
        text = source.read_text()
    except OSError as exc:
        raise InvalidRequest(f"--params-file {source}: {exc.strerror}") from None
    rows: list[dict[str, str]] = []
    if source.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidRequest(f"{source}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InvalidRequest(f"{source}:{number}: each line must be a JSON object")
            rows.append({str(k): str(v) for k, v in row.items()})
    else:
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise InvalidRequest(
                f"{source}: the CSV file needs a header line naming the parameters"
            )
        for number, row in enumerate(reader, 2):
            if None in row or any(v is None for v in row.values()):
                raise InvalidRequest(
                    f"{source}:{number}: the row has a different number of fields than the header"
                )
            rows.append({k.strip(): v for k, v in row.items()})
    if not rows:
        raise InvalidRequest(f"{source} has no rows of parameters")
    return rows
