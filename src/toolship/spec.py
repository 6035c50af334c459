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
from typing import TypedDict, Unpack

from toolship.errors import InvalidRequest
from toolship.models import static_dir
from toolship.units import parse_duration, parse_size_gb
from toolship.wildcards import has_wildcard

__all__ = [
    "DEFAULT_WORKDIR",
    "TASK_ARGUMENTS",
    "BatchArguments",
    "MemberArguments",
    "Pairs",
    "TaskArguments",
    "batch_fields",
    "build_task",
    "grid",
    "local_url",
    "read_params_file",
    "split_pair",
    "task_template",
]

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


def local_url(value: str) -> str:
    """A URL as given, or a local path made into an absolute file:// URL ending in ``/``
    when it names a folder (given so, or existing): what a service's port receives, where
    the server — which cannot look at this machine — reads a trailing ``/`` as a folder."""
    url = _url(value)
    if url.startswith("file://") and not url.endswith("/") and Path(url[7:]).is_dir():
        return url + "/"
    return url


def _input(path: str, value: str, workdir: str) -> dict[str, str]:
    url = _url(value)
    kind = "DIRECTORY" if url.endswith("/") else "FILE"
    if kind == "FILE" and url.startswith("file://") and Path(url[7:]).is_dir():
        kind = "DIRECTORY"
    return {"path": _container_path(path, workdir), "url": url.rstrip("/") or url, "type": kind}


def _output(path: str, value: str, workdir: str) -> dict[str, str]:
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


def _content(path: str, value: str, workdir: str) -> dict[str, str]:
    if value.startswith("@"):
        source = Path(value[1:]).expanduser()
        try:
            text = source.read_text()
        except OSError as exc:
            raise InvalidRequest(f"--content {path}=@{source}: {exc.strerror}") from None
    else:
        text = value
    return {"path": _container_path(path, workdir), "content": text, "type": "FILE"}


class MemberArguments(TypedDict, total=False):
    """The task arguments a member of a sweep or a map takes (see :class:`TaskArguments`)."""

    inputs: Pairs  # -i PATH=URL: stage URL (or a local path) in at PATH; URL/ = a directory
    outputs: Pairs  # -o PATH=URL: deliver PATH afterwards; wildcards in PATH need URL/
    content: Pairs  # --content PATH=TEXT or PATH=@FILE: a small inline input
    env: Pairs  # -e KEY=VALUE: an environment variable of the executor
    workdir: str | None  # -w: the executor's working directory (default /work; None: none)
    volumes: Sequence[str]  # --volume PATH: an empty writable directory shared by executors
    cpu: int | None  # --cpu: cores, reserved and enforced
    memory: str | float | None  # --memory: "512M", "2G" or GiB as a number
    disk: str | float | None  # --disk: "10G" or GiB as a number (checked, not a quota)
    timeout: str | float | None  # --timeout: "90s", "2h" or seconds as a number
    network: bool  # --network: give the container a network (off by default)
    name: str | None  # --name
    tags: Pairs  # --tag KEY=VALUE
    runtime: str | None  # --runtime: podman (default), docker or process
    sync: str | None  # --sync URL/: staged into the workdir first, changes uploaded back
    writable_inputs: bool  # --writable-inputs: copy local inputs instead of mounting them
    retries: int | None  # --retries N: try a failed task again up to N more times
    retry_on: str | None  # --retry-on: system-error (default), oom, exit:CODE[,CODE]
    after: Sequence[str]  # --after TASK_ID: start only once these tasks are COMPLETE
    gpus: int | None  # --gpus: GPUs per node
    nodes: int | None  # --nodes N: N nodes, one rank each


class TaskArguments(MemberArguments, total=False):
    """The task arguments: the one declaration of what users say about a task.

    :func:`build_task`, ``Client.submit`` and ``Client.run`` take them as keywords
    (``**args: Unpack[TaskArguments]``, which mypy checks at call sites, and
    :func:`build_task` at run time); the CLI's task options carry the same names
    (a unit test fails if they drift).  Every key is optional; ``Pairs`` are
    ``["KEY=VALUE", ...]`` or a mapping.  A batch member takes all but these three:
    a batch has its own priority, a sweep's ``params`` are its rows, and the result
    cache answers tasks created one by one (``cache`` is ``toolship run``'s alone).
    """

    priority: int | None  # --priority: higher starts first (default 0)
    cache: bool  # --cache (run only): answer from the result cache when the exact key matches
    params: Pairs  # -b KEY=VALUE: a backend parameter (partition=gpu, account=lab, ...)


class BatchArguments(MemberArguments, total=False):
    """What ``Client.sweep`` and ``Client.map`` take besides their own: the members' task
    arguments and the batch's (the CLI's batch options carry the same names)."""

    max_parallel: int | None  # --max-parallel N: at most N members at once
    priority: int | None  # --priority: of the batch's members (higher starts first)
    batch_timeout: str | None  # --batch-timeout: cancel what is unfinished after, e.g. 2h
    batch_name: str | None  # --batch-name


TASK_ARGUMENTS = TaskArguments.__required_keys__ | TaskArguments.__optional_keys__


def batch_fields(args: BatchArguments) -> dict[str, object]:
    """The batch's own fields of a batch request, taken out of ``args``.

    What is left in ``args`` describes the members (and can go to :func:`build_task`).
    """
    given = {
        "max_parallel": args.pop("max_parallel", None),
        "priority": args.pop("priority", None),
        "timeout": args.pop("batch_timeout", None),
        "name": args.pop("batch_name", None),
    }
    return {k: v for k, v in given.items() if v is not None}


def _check_arguments(args: TaskArguments) -> None:
    unknown = sorted(args.keys() - TASK_ARGUMENTS)
    if unknown:  # what a signature with named parameters would refuse (mypy says it first)
        raise TypeError(
            f"unexpected keyword argument {unknown[0]!r}; "
            f"the task arguments are {', '.join(sorted(TASK_ARGUMENTS))}"
        )


def build_task(
    image: str, command: Sequence[str], **args: Unpack[TaskArguments]
) -> dict[str, object]:
    """A TES task document, ready to send, from the task arguments.

    It is checked by the server that receives it, so that a user gets the same
    message from the CLI, the SDK and a raw request.
    """
    _check_arguments(args)
    if not command:
        raise InvalidRequest("give the command to run after the image, e.g. IMAGE -- echo hi")
    workdir = args.get("workdir", DEFAULT_WORKDIR)
    executor: dict[str, object] = {"image": image, "command": list(command)}
    return {"executors": [executor], **_task(args, workdir, executor)}


def task_template(**args: Unpack[TaskArguments]) -> dict[str, object]:
    """A TES task without image and command, from the task arguments: what a service run
    adds to the service's own task (``ServiceRun.task``).

    Its one executor, if any, holds only ``workdir`` and ``env``; with no ``workdir``
    given none is set, so the service's own applies (relative PATHs then start at
    /work, as for ``toolship run``).
    """
    _check_arguments(args)
    executor: dict[str, object] = {}
    task = _task(args, args.get("workdir"), executor)
    return {"executors": [executor], **task} if executor else task


def _task(
    args: TaskArguments, workdir: str | None, executor: dict[str, object]
) -> dict[str, object]:
    """The task's fields besides the executors; the executor's workdir and env go into
    ``executor``."""
    wd = workdir or DEFAULT_WORKDIR
    if workdir:
        executor["workdir"] = workdir
    env = dict(_pairs(args.get("env"), "--env"))
    if env:
        executor["env"] = env
    task: dict[str, object] = {}
    if name := args.get("name"):
        task["name"] = name
    inputs, outputs = _files(args, wd)
    if inputs:
        task["inputs"] = inputs
    if outputs:
        task["outputs"] = outputs
    if volumes := args.get("volumes"):
        task["volumes"] = [_container_path(v, wd) for v in volumes]
    tags = dict(_pairs(args.get("tags"), "--tag"))
    if tags:
        task["tags"] = tags
    resources = _resources(args)
    if resources:
        task["resources"] = resources
    return task


def _files(args: TaskArguments, wd: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Inputs and outputs: -i, then --sync's folder both ways, then --content."""
    inputs = [_input(p, v, wd) for p, v in _pairs(args.get("inputs"), "--input")]
    outputs = [_output(p, v, wd) for p, v in _pairs(args.get("outputs"), "--output")]
    inputs += [_content(p, v, wd) for p, v in _pairs(args.get("content"), "--content")]
    if sync := args.get("sync"):
        _sync_alone(inputs, wd)
        folder = _url(sync if sync.endswith("/") else sync + "/").rstrip("/")
        inputs.insert(0, {"path": wd, "url": folder, "type": "DIRECTORY"})
        outputs.append({"path": wd, "url": folder, "type": "DIRECTORY"})
    return inputs, outputs


def _sync_alone(inputs: list[dict[str, str]], wd: str) -> None:
    """Refuse an input inside the folder --sync stages (the server would call the two nested)."""
    for given in inputs:
        path = given["path"]
        if path == wd or path.startswith(wd.rstrip("/") + "/"):
            flag = "--content" if "content" in given else "-i"
            name = posixpath.basename(path)
            raise InvalidRequest(
                f"{flag} {path}: --sync stages its folder into the workdir {wd}, so no other "
                f"input can go inside it; put it outside, e.g. {flag} /opt/{name}=..., or "
                "into the synced folder itself"
            )


def _resources(args: TaskArguments) -> dict[str, object]:
    resources: dict[str, object] = {}
    if (cpu := args.get("cpu")) is not None:
        resources["cpu_cores"] = cpu
    if (memory := args.get("memory")) is not None:
        resources["ram_gb"] = _size(memory, "--memory")
    if (disk := args.get("disk")) is not None:
        resources["disk_gb"] = _size(disk, "--disk")
    extra = _backend_parameters(args)
    if extra:
        resources["backend_parameters"] = extra
        resources["backend_parameters_strict"] = True
    return resources


def _backend_parameters(args: TaskArguments) -> dict[str, str]:
    """The arguments TES has no field for, as toolship's backend parameters."""
    timeout, retries, nodes = args.get("timeout"), args.get("retries"), args.get("nodes")
    priority = args.get("priority")
    given = {
        "timeout": None if timeout is None else f"{_seconds(timeout):g}s",
        "network": "true" if args.get("network") else None,
        "runtime": args.get("runtime") or None,
        "priority": None if priority is None else str(priority),
        "writable_inputs": "true" if args.get("writable_inputs") else None,
        "retries": None if retries is None else str(retries),
        "retry_on": args.get("retry_on") or None,
        "after": ",".join(args.get("after", ())) or None,
        "gpus": str(args.get("gpus") or "") or None,
        "nodes": None if nodes is None else str(nodes),
        "cache": "true" if args.get("cache") else None,
    }
    extra = {k: v for k, v in given.items() if v is not None}
    extra.update((k.lower(), v) for k, v in _pairs(args.get("params"), "--param"))
    return extra


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


def grid(params: Sequence[str] | Mapping[str, Sequence[object]]) -> list[dict[str, str]]:
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
