"""Turn a submitted TES task into a stored one, or a 400 that says what to fix."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from toolship.catalog.trust import ImageTrust
from toolship.config import Settings
from toolship.db import TaskRow
from toolship.engine.ids import new_task_id
from toolship.engine.limits import check_limits, check_text
from toolship.engine.policy import Policy, check_image, check_policy
from toolship.errors import InvalidRequest
from toolship.models import Input, Task, distinct_inputs
from toolship.options import OptionDefaults, TaskOptions, read_options
from toolship.records import RuntimeRecord
from toolship.states import TaskState
from toolship.storage import StorageRegistry
from toolship.timeutil import now_rfc3339
from toolship.worker.layout import inside, writable_dirs

__all__ = ["MIN_MEMORY_GB", "Admission", "admit"]

# The smallest memory limit podman accepts (6 MiB), in GiB.
MIN_MEMORY_GB = 6 / 1024


class Admission(Protocol):
    """What a compute backend says about a task before it is accepted."""

    def check(self, options: TaskOptions) -> None:
        """Raise InvalidRequest if this backend can never run a task asking for ``options``."""
        ...


def admit(
    task: Task,
    *,
    storage: StorageRegistry,
    backend: Admission,
    settings: Settings,
    policy: Policy,
    seen: dict[str, TaskOptions] | None = None,
    trust: ImageTrust | None = None,
    pinned: dict[str, str] | None = None,
) -> tuple[TaskRow, TaskOptions]:
    """Check a task and make its row.

    A batch passes ``seen``: options already read and checked, by the resources' JSON
    (a sweep's members mostly share theirs).  With ``trust`` whose rules apply, each
    image is checked (and may be resolved to a digest: blocking I/O, callers on the
    event loop run this in a thread); a batch passes ``pinned``, the images its
    members named so far and what they run, so each image is resolved once.
    """
    check_limits(task, settings.limits)
    found = layout_problems(task)
    if found:
        raise InvalidRequest("; ".join(found))
    for i, ex in enumerate(task.executors):
        check_image(ex.image, policy, f"executors[{i}].image")
    images: tuple[str, ...] = ()
    if trust is not None and trust.active:
        memo = pinned if pinned is not None else {}
        for i, ex in enumerate(task.executors):
            if ex.image not in memo:
                memo[ex.image] = trust.pin(ex.image, f"executors[{i}].image")
        images = tuple(memo[ex.image] for ex in task.executors)
    key = task.resources.model_dump_json() if seen is not None and task.resources else ""
    options = seen.get(key) if seen is not None else None
    if options is None:
        options = _options(task, settings, policy)
        backend.check(options)
        if seen is not None:
            seen[key] = options
    for i, inp in enumerate(task.inputs or []):
        if inp.content is None and inp.url:
            _with_field(
                f"inputs[{i}].url", storage.for_url(inp.url).check_input, inp.url, inp.type.value
            )
    for i, out in enumerate(task.outputs or []):
        _with_field(f"outputs[{i}].url", storage.for_url(out.url).check_output, out.url)
    spec = spec_of(task, options)
    check_text(spec)
    row = TaskRow(
        seq=0,
        id=new_task_id(),
        state=TaskState.QUEUED,
        name=task.name,
        creation_time=now_rfc3339(),
        priority=options.priority,
        cpus=options.cpus,
        memory_gb=options.memory_gb,
        gpus=options.gpus,
        spec=spec,
        resolved=dataclasses.replace(options.pinned(), images=images),
        runtime=RuntimeRecord(warnings=list(options.warnings)),
        secrets=dict(options.credentials),
    )
    return row, options


def _options(task: Task, settings: Settings, policy: Policy) -> TaskOptions:
    resources = task.resources
    ram_gb = resources.ram_gb if resources is not None else None
    if ram_gb is not None and ram_gb < MIN_MEMORY_GB:
        raise InvalidRequest(
            f"resources.ram_gb={ram_gb:g} is below the smallest memory limit a container "
            f"can have (6 MiB = {MIN_MEMORY_GB:.4f} GiB); ask for more, or leave ram_gb out "
            "for the server's default"
        )
    options = read_options(resources, OptionDefaults.of(settings))
    check_policy(
        options, policy, default_runtime=settings.default_runtime, backend=settings.backend
    )
    return options


def _with_field(field: str, check: Any, *args: Any) -> None:
    try:
        check(*args)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{field}: {exc}") from None


def spec_of(task: Task, options: TaskOptions) -> dict[str, Any]:
    """The task as stored and echoed: what the client sent, nothing added.

    No server-owned fields; backend_parameters keep only the supported keys,
    lower-cased, without credentials (TES: unsupported keys are neither stored nor
    echoed).  What the server decided for what the task left out (runtime, cores,
    memory) is kept apart, in the row's ``resolved``: a client reads back no field
    it did not send (py-tes 0.4 cannot read one it does not know).
    """
    spec = task.model_dump(
        mode="json", exclude_none=True, exclude={"id", "state", "logs", "creation_time"}
    )
    resources = spec.get("resources")
    if resources is not None and "backend_parameters" in resources:
        resources["backend_parameters"] = dict(options.parameters)
    return spec


def layout_problems(task: Task) -> list[str]:
    """Layout rules a task breaks (empty when it can be laid out)."""
    found: list[str] = []
    for d in writable_dirs(task):
        if d == "/":
            found.append(
                "a writable path is directly under '/' (an output, stdout or stderr file); "
                "put it in a directory such as /out"
            )
    inputs = distinct_inputs(task.inputs)  # an identical repeat is one input
    for i, a in enumerate(inputs):
        for b in inputs[i + 1 :]:
            if a.path == b.path:
                found.append(
                    f"two inputs use the same path {a.path} with different sources "
                    f"({_source_name(a)} and {_source_name(b)}); give each its own path"
                )
            elif inside(a.path, b.path) or inside(b.path, a.path):
                found.append(
                    f"input paths {a.path} and {b.path} are nested; give each its own path"
                )
    return found


def _source_name(inp: Input) -> str:
    if inp.content is not None:
        return "inline content"
    return f"{inp.type.value} {inp.url}"
