"""Turning a batch request into stored member tasks (or a 400 naming the member at fault).

The expansion itself is pure (:mod:`toolship.engine.expand`); this module adds
what needs the server: listing the objects a map goes over, admitting each
member as an ordinary task, and resolving ``@N`` member references.
"""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from toolship.compute.base import Request
from toolship.db import BatchRow, TaskRow
from toolship.engine.expand import check_graph, expand_map, expand_sweep, reduce_member
from toolship.engine.ids import new_batch_id
from toolship.engine.limits import check_text
from toolship.engine.policy import check_policy
from toolship.engine.quotas import check_account
from toolship.engine.service_batches import service_map, service_sweep
from toolship.errors import InvalidRequest
from toolship.identity import ANONYMOUS, Principal
from toolship.models import BatchRequest, Task
from toolship.options import OptionDefaults, TaskOptions, read_options
from toolship.services import BatchService, ServiceVersion
from toolship.states import TaskState
from toolship.timeutil import now_rfc3339
from toolship.units import format_duration, parse_duration

if TYPE_CHECKING:
    from toolship.engine.engine import Engine

__all__ = ["BATCH_TAG", "MAX_MEMBERS", "BatchBuilder"]

BATCH_TAG = "toolship.batch"  # on every member, so TES clients can see and filter by it
MAX_MEMBERS = 100_000
_TASKS = TypeAdapter(list[Task])


def _text(value: str | int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _resources_of(version: ServiceVersion, service: BatchService) -> Task:
    """A task with the service run's resources: what a map's listing credentials come from."""
    resources = (service.task or {}).get("resources")
    doc = {"executors": [{"image": version.image, "command": ["true"]}]}
    try:
        return Task.model_validate({**doc, **({"resources": resources} if resources else {})})
    except ValidationError as exc:
        raise InvalidRequest(f"service.task.resources: {exc.errors()[0]['msg']}") from None


class BatchBuilder:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def store(
        self, request: BatchRequest, owner: Principal = ANONYMOUS
    ) -> tuple[BatchRow, list[TaskRow], list[tuple[str, ...]], dict[str, TaskState]]:
        """Build, check and store a batch; its members' ``after``, the outside parents' states.

        Run off the event loop: it touches no engine state.
        """
        # Tens of thousands of small new objects would run the cyclic GC over and over
        # (its cost grows with the heap): pause it for the build, none of them form cycles.
        paused = gc.isenabled()
        gc.disable()
        try:
            batch, rows, afters = self.build(request, owner.name)
            self._within_quotas(rows, owner)
            batch.owner, batch.owner_group = owner.name, owner.group
            for row in rows:
                row.owner, row.owner_group = owner.name, owner.group
                row.replica = self.engine.replica  # the replica that admits runs it
            parents = {p for after in afters for p in after} - {r.id for r in rows}
            states = self.engine.parent_states(tuple(sorted(parents)), owner)
            self.engine.store.insert_tasks(rows, batch)
        finally:
            if paused:
                gc.enable()
        return batch, rows, afters, states

    def _within_quotas(self, rows: list[TaskRow], owner: Principal) -> None:
        """The owner's batch-size and queued-task quotas; each member's running quota."""
        accounts = self.engine.core.accounts
        accounts.quotas.admit_batch(owner.name, owner.group, len(rows))
        for row in rows:
            cost = Request(row.id, row.cpus, row.memory_gb, row.gpus, owner=owner.name,
                           owner_group=owner.group)  # fmt: skip
            accounts.quotas.could_start(cost)
            params = row.spec.get("resources", {}).get("backend_parameters") or {}
            check_account(self.engine.settings.access.slurm_accounts, owner.name, params)
        accounts.quotas.admit(owner.name, owner.group, accounts.tally, adding=len(rows))

    def build(
        self, req: BatchRequest, owner: str | None = None
    ) -> tuple[BatchRow, list[TaskRow], list[tuple[str, ...]]]:
        batch_id = new_batch_id()
        limits = self.engine.settings.limits
        check_text(req.model_dump(mode="json", include={"name", "tags", "params"}))
        if req.name is not None and len(req.name) > limits.max_name_length:
            raise InvalidRequest(
                f"name is {len(req.name)} characters long, at most {limits.max_name_length} "
                "are accepted here (limits.max_name_length); shorten it"
            )
        members, where, spec, kind = self._members(req)
        if not members:
            raise InvalidRequest("tasks: a batch needs at least one task")
        if len(members) > MAX_MEMBERS:
            raise InvalidRequest(
                f"the batch would have {len(members)} members; at most {MAX_MEMBERS} are "
                "accepted at once — split it, or use map --chunk to group objects"
            )
        rows: list[TaskRow] = []
        options: list[TaskOptions] = []
        for member in members:
            member["tags"] = {**(req.tags or {}), **(member.get("tags") or {}), BATCH_TAG: batch_id}
            if req.priority is not None:
                params = member.setdefault("resources", {}).setdefault("backend_parameters", {})
                if "priority" not in {k.lower() for k in params}:
                    params["priority"] = str(req.priority)
        try:  # one call for all members: far less overhead than one per member
            tasks = _TASKS.validate_python(members)
        except ValidationError as exc:
            first = exc.errors()[0]
            index = int(first["loc"][0]) if first.get("loc") else 0
            where_ = ".".join(str(p) for p in first["loc"][1:])
            raise InvalidRequest(f"{where(index)}: {where_}: {first['msg']}") from None
        seen: dict[str, TaskOptions] = {}
        pinned: dict[str, str] = {}  # images resolved once per batch (images.trust)
        for i, task in enumerate(tasks):
            try:
                # Each member keeps its own creation time: sorted by it, members read
                # in their order (index, then the reduce).
                row, opts = self.engine.admit(task, seen=seen, pinned=pinned, owner=owner)
            except InvalidRequest as exc:
                raise InvalidRequest(f"{where(i)}: {exc}") from None
            _no_cache(opts, where(i))
            row.batch_id = batch_id
            rows.append(row)
            options.append(opts)
        afters = self._resolve_after(rows, options, where)
        deadline = None
        if req.timeout is not None:
            try:
                seconds = parse_duration(req.timeout)
            except ValueError as exc:
                raise InvalidRequest(f"timeout: {exc}") from None
            deadline = time.time() + seconds
            spec["timeout"] = format_duration(seconds)
        batch = BatchRow(
            id=batch_id,
            name=req.name,
            kind=kind,
            creation_time=now_rfc3339(),
            size=len(rows),
            max_parallel=req.max_parallel,
            priority=req.priority or 0,
            deadline=deadline,
            spec=spec,
        )
        return batch, rows, afters

    def _members(self, req: BatchRequest) -> tuple[list[dict[str, Any]], Any, dict[str, Any], str]:
        dump: dict[str, Any] = {"mode": "json", "exclude_none": True}
        spec: dict[str, Any] = {}
        if req.tasks is not None:
            members = [t.model_dump(**dump) for t in req.tasks]
            kind = "tasks"

            def where(i: int) -> str:
                return f"tasks[{i}]" if i < len(members) - (req.reduce is not None) else "reduce"

        elif req.params is not None:
            rows = [{k: _text(v) for k, v in row.items()} for row in req.params]
            if req.service is not None:
                members = service_sweep(self._version(req.service), req.service, rows)
            else:
                assert req.template is not None
                members = expand_sweep(req.template.model_dump(**dump), rows)
            spec["params"] = rows
            kind = "sweep"

            def where(i: int) -> str:
                return f"params[{i}]" if i < len(rows) else "reduce"

        else:
            assert req.map is not None
            m = req.map
            if req.service is not None:
                version = self._version(req.service)
                credentials = self._credentials(_resources_of(version, req.service))
                urls = self.engine.storage.for_url(m.over).glob(m.over, credentials)
                members = service_map(version, req.service, urls, m)
            else:
                assert req.template is not None
                credentials = self._credentials(req.template)
                urls = self.engine.storage.for_url(m.over).glob(m.over, credentials)
                members = expand_map(
                    req.template.model_dump(**dump),
                    urls,
                    over=m.over,
                    chunk=m.chunk,
                    to=m.to,
                    input_dir=m.input_dir,
                    output_dir=m.output_dir,
                )
            spec.update(over=m.over, chunk=m.chunk, to=m.to, objects=len(urls))
            kind = "map"

            def where(i: int) -> str:
                return f"map member {i} ({members[i].get('name')})"

        if req.reduce is not None:
            reduce = req.reduce.model_dump(**dump)
            if req.map is not None:
                reduce = reduce_member(
                    reduce,
                    to=req.map.to,
                    input_dir=req.map.input_dir,
                    output_dir=req.map.output_dir,
                )
            params = reduce.setdefault("resources", {}).setdefault("backend_parameters", {})
            refs = [f"@{i}" for i in range(len(members))]
            params["after"] = ",".join(filter(None, [params.get("after", ""), *refs]))
            members.append(reduce)
            spec["reduce"] = len(members) - 1
        return members, where, spec, kind

    def _version(self, service: BatchService) -> ServiceVersion:
        catalog = self.engine.catalog
        if catalog is None:
            raise InvalidRequest("this server has no services catalog; give a template task")
        return catalog.get(service.name, service.version)

    def _credentials(self, template: Task) -> dict[str, str]:
        """The template's credentials for listing the objects, if the policy allows them."""
        settings = self.engine.settings
        options = read_options(template.resources, OptionDefaults.of(settings))
        try:
            check_policy(
                options,
                self.engine.policy,
                default_runtime=settings.default_runtime,
                backend=settings.backend,
            )
        except InvalidRequest as exc:
            raise InvalidRequest(f"template: {exc}") from None
        return options.credentials

    def _resolve_after(
        self, rows: list[TaskRow], options: list[TaskOptions], where: Any
    ) -> list[tuple[str, ...]]:
        graph: dict[int, set[int]] = {}
        for i, opts in enumerate(options):
            local = set()
            for ref in opts.after:
                if ref.startswith("@"):
                    try:
                        local.add(int(ref[1:]))
                    except ValueError:
                        raise InvalidRequest(
                            f"{where(i)}: after={ref!r}: name members as @N (N counts from 0)"
                        ) from None
            if local:
                graph[i] = local
        check_graph(graph, len(rows))
        afters: list[tuple[str, ...]] = []
        for row, opts in zip(rows, options, strict=True):
            resolved = tuple(rows[int(a[1:])].id if a.startswith("@") else a for a in opts.after)
            afters.append(resolved)
            if resolved:
                row.spec["resources"]["backend_parameters"]["after"] = ",".join(resolved)
        return afters


def _no_cache(options: TaskOptions, where: str) -> None:
    """A member asking for the result cache is refused: only single tasks are looked up."""
    if options.cache:
        raise InvalidRequest(
            f"{where}: resources.backend_parameters.cache: the result cache answers tasks "
            "created one by one, not members of a batch; create the tasks one by one "
            "(toolship run --cache) or leave cache out"
        )
