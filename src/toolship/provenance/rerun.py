"""An exact rerun of a stored task, and its outputs checked against the original's.

The rerun is an ordinary TES task: the original's executors with each image pinned
to the digest its last attempt recorded (``repository@sha256:…``), the same
command, environment, resources and inputs, tagged ``toolship.rerun_of``.  The
inputs' recorded sha256 travel as ``backend_parameters.inputs_sha256``, which the
worker checks before any executor runs.  Its outputs never overwrite the
original's: they go to a ``rerun-XXXXXXXX/`` folder beside each original URL,
under ``out_prefix``, or where ``outputs`` says.
"""

from __future__ import annotations

import json
import secrets
from urllib.parse import urlsplit, urlunsplit

from toolship.db import TaskRow
from toolship.errors import Conflict, InvalidRequest
from toolship.models import FileType, Output, Resources, Task, TaskLog
from toolship.states import is_final
from toolship.supply.hashes import file_hashes, input_hashes
from toolship.supply.images import image_uses
from toolship.supply.reruns import RERUN_OF, OutputPlace, RerunRequest, Verification, compare

__all__ = ["output_hashes", "rerun_task", "verification"]


def output_hashes(attempt: TaskLog | None) -> dict[str, str]:
    """The attempt's output files: container path -> sha256 ("" when none was recorded)."""
    if attempt is None:
        return {}
    hashes = file_hashes(attempt.metadata)
    return {o.path: hashes.get(o.path, "") for o in attempt.outputs}


def rerun_task(row: TaskRow, request: RerunRequest) -> tuple[Task, list[OutputPlace], int]:
    """The rerun of ``row`` as a new task, where its outputs go, and how many input
    files the worker checks.  A 409 when the original cannot be rerun exactly."""
    if not is_final(row.state):
        raise Conflict(
            f"task {row.id} is {row.state.value}: only a task that has ended can be rerun; "
            f"wait for it (toolship wait {row.id})"
        )
    if not row.logs:  # canceled, or failed, before an attempt began: waiting will not help
        raise Conflict(
            f"task {row.id} ended {row.state.value} before any attempt ran: there is no run "
            "to repeat (no image digest, no input hash); submit the task again instead"
        )
    attempt = row.logs[-1]
    task = Task.model_validate(row.spec)
    params = dict(task.resources.backend_parameters or {}) if task.resources else {}
    resolved = row.resolved
    runtime = params.get("runtime") or (resolved.runtime if resolved else "")
    if runtime != "process":
        _pin_images(row, task, attempt)
    params.pop("after", None)  # the parents ended long ago; the inputs are checked instead
    params.pop("inputs_sha256", None)
    expected = {} if request.allow_changed_inputs else _input_hashes(row, task, attempt)
    if expected:
        params["inputs_sha256"] = json.dumps(expected, sort_keys=True, separators=(",", ":"))
    if runtime:
        params["runtime"] = runtime
    resources = task.resources or Resources()
    if resources.cpu_cores is None:
        resources.cpu_cores = row.cpus
    if resources.ram_gb is None and resolved is not None and resolved.memory_limited:
        resources.ram_gb = row.memory_gb
    resources.backend_parameters = params
    task.resources = resources
    places = _place_outputs(task.outputs or [], request)
    for out, place in zip(task.outputs or [], places, strict=True):
        out.url = place.url
    task.tags = {**(task.tags or {}), RERUN_OF: row.id}
    return task, places, len(expected)


def verification(rerun: TaskRow, original: TaskRow) -> Verification:
    """The rerun's output files against the original's; a 409 while the rerun runs."""
    if not is_final(rerun.state):
        raise Conflict(
            f"task {rerun.id} is {rerun.state.value}: its outputs are compared once it has "
            f"ended; wait for it (toolship wait {rerun.id})"
        )
    ours = output_hashes(rerun.logs[-1] if rerun.logs else None)
    theirs = output_hashes(original.logs[-1] if original.logs else None)
    return compare(rerun.id, ours, original.id, theirs)


def _pin_images(row: TaskRow, task: Task, attempt: TaskLog) -> None:
    uses = {u.executor: u for u in image_uses(attempt.metadata)}
    for i, ex in enumerate(task.executors):
        use = uses.get(i)
        if use is None or not use.digest:
            raise Conflict(
                f"task {row.id}'s last attempt recorded no image digest for executor {i} "
                f"({ex.image}): it never ran, or ran before toolship recorded digests, so "
                "the image it used is unknown and it cannot be rerun exactly; submit it "
                "again as a new task"
            )
        ex.image = use.pinned


def _input_hashes(row: TaskRow, task: Task, attempt: TaskLog) -> dict[str, str]:
    """The sha256 the original staged for every input file, by container path."""
    kept = input_hashes(attempt.metadata)  # inputs an output of the same path overwrote
    produced = {o.path for o in attempt.outputs} - kept.keys()
    hashes = {**file_hashes(attempt.metadata), **kept}
    expected: dict[str, str] = {}
    for inp in task.inputs or []:
        if inp.type is FileType.DIRECTORY:
            inside = inp.path.rstrip("/") + "/"
            expected |= {
                p: h for p, h in hashes.items() if p.startswith(inside) and p not in produced
            }
        elif inp.path in hashes:
            expected[inp.path] = hashes[inp.path]
        else:
            raise Conflict(
                f"task {row.id}'s last attempt recorded no sha256 for input {inp.path} (it "
                "never staged it, or ran before toolship hashed inputs mounted in place), so "
                "its bytes cannot be checked; rerun with --allow-changed-inputs "
                "(allow_changed_inputs) to run on the input's current bytes"
            )
    return expected


def _place_outputs(outputs: list[Output], request: RerunRequest) -> list[OutputPlace]:
    known = {o.path for o in outputs}
    unknown = sorted(request.outputs.keys() - known)
    if unknown:
        raise InvalidRequest(
            f"outputs: the original task has no output at {', '.join(unknown)}; its outputs "
            f"are at {', '.join(sorted(known)) or 'no path (it has none)'}"
        )
    folder = "rerun-" + secrets.token_hex(4)
    places = []
    for out in outputs:
        url = request.outputs.get(out.path)
        if url is None:
            url = (
                _under(request.out_prefix, out.url)
                if request.out_prefix
                else _beside(out.url, folder)
            )
        places.append(OutputPlace(path=out.path, url=url))
    _no_shared_urls(places)
    return places


def _split(url: str) -> tuple[str, str, str]:
    """(the URL up to its last segment's folder, the last segment, "/" if it is a folder)."""
    parts = urlsplit(url)
    path = parts.path
    slash = "/" if path.endswith("/") else ""
    head, _, name = path.rstrip("/").rpartition("/")
    return urlunsplit(parts._replace(path=head)), name, slash


def _beside(url: str, folder: str) -> str:
    """``…/parent/name`` -> ``…/parent/rerun-XXXXXXXX/name``."""
    head, name, slash = _split(url)
    return f"{head}/{folder}/{name}{slash}" if name else f"{head}/{folder}/"


def _under(prefix: str, url: str) -> str:
    _, name, slash = _split(url)
    return f"{prefix.rstrip('/')}/{name}{slash}" if name else prefix


def _no_shared_urls(places: list[OutputPlace]) -> None:
    seen: dict[str, str] = {}
    for place in places:
        other = seen.setdefault(place.url, place.path)
        if other != place.path:
            raise InvalidRequest(
                f"outputs {other} and {place.path} would both go to {place.url}; give one "
                f"its own URL (toolship rerun --out {place.path}=URL)"
            )
