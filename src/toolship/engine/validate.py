"""Turn a submitted TES task into a stored one, or a 400 that says what to fix."""

from __future__ import annotations

from typing import Any, Protocol

from toolship.db import TaskRow
from toolship.engine.ids import new_task_id
from toolship.engine.options import TaskOptions, read_options
from toolship.errors import InvalidRequest
from toolship.models import Task
from toolship.states import TaskState
from toolship.storage import StorageRegistry
from toolship.timeutil import now_rfc3339
from toolship.worker.layout import problems

__all__ = ["Admission", "admit"]


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
    default_runtime: str,
    default_cpus: int,
    default_memory_gb: float,
    seen: dict[str, TaskOptions] | None = None,
) -> tuple[TaskRow, TaskOptions]:
    """Check a task and make its row.

    A batch passes ``seen``: options already read and checked, by the resources' JSON
    (a sweep's members mostly share theirs).
    """
    found = problems(task)
    if found:
        raise InvalidRequest("; ".join(found))
    key = task.resources.model_dump_json() if seen is not None and task.resources else ""
    options = seen.get(key) if seen is not None else None
    if options is None:
        options = read_options(
            task.resources,
            default_runtime=default_runtime,
            default_cpus=default_cpus,
            default_memory_gb=default_memory_gb,
        )
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
        runtime={"warnings": list(options.warnings)} if options.warnings else {},
        secrets=dict(options.credentials),
    )
    return row, options


def _with_field(field: str, check: Any, *args: Any) -> None:
    try:
        check(*args)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{field}: {exc}") from None


def spec_of(task: Task, options: TaskOptions) -> dict[str, Any]:
    """The task as stored and echoed: no server-owned fields, only supported parameters."""
    spec = task.model_dump(
        mode="json", exclude_none=True, exclude={"id", "state", "logs", "creation_time"}
    )
    # Pin what the server decided, so a restart or a later default change cannot alter it.
    resources = spec.setdefault("resources", {})
    resources.setdefault("cpu_cores", options.cpus)
    resources["backend_parameters"] = {**options.parameters, "runtime": options.runtime}
    return spec
