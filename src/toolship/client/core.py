"""The SDK's :class:`Client`: tasks and batches here, the services catalog mixed in from
:mod:`toolship.client.services`, the connection from :mod:`toolship.client.base`."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Unpack

from toolship.client.audit import Audit
from toolship.client.base import TES
from toolship.client.cache import Cache
from toolship.client.handles import Batch, Task
from toolship.client.provenance import Provenances
from toolship.client.quota import Quotas
from toolship.client.reruns import Reruns
from toolship.client.sboms import Sboms
from toolship.client.services import Services
from toolship.client.users import Users
from toolship.models import (
    BatchInfo,
    BatchList,
    BatchReport,
    BatchRequest,
    CancelBatchResponse,
    CreateBatchResponse,
    CreateTaskResponse,
    ListTasksResponse,
    ServiceInfo,
    TaskDetails,
    TaskView,
    TaskWait,
    View,
)
from toolship.models import Task as TesTask
from toolship.spec import (
    DEFAULT_WORKDIR,
    BatchArguments,
    MemberArguments,
    Pairs,
    TaskArguments,
    batch_fields,
    build_task,
    grid,
)
from toolship.states import TaskState, is_final


class Client(Services, Reruns, Cache, Audit, Sboms, Provenances, Users, Quotas):
    """One httpx client for one server; every method is one request (or a page loop).

    Why it is shaped so: the CLI is built on it, so the SDK and the CLI can never
    disagree about what a request means; with no URL it starts (or reuses) the
    same local embedded server the CLI uses, so a script needs no setup, and that
    server loads only then — importing the SDK loads neither FastAPI, the engine
    nor SQLAlchemy.  Tasks are described by the task arguments
    (:class:`toolship.spec.TaskArguments`, the CLI's option names); what comes
    back is typed — the TES models of :mod:`toolship.models` for tasks, its
    batch models for toolship's own API — never a bare dict.  ``Task`` and
    ``Batch`` are thin handles (an id and this client) that ask again each time.
    """

    # --- tasks ------------------------------------------------------------

    def create(self, task: TesTask | Mapping[str, object]) -> Task:
        """Submit a TES task (a model or a document) as is."""
        body = (
            task.model_dump(mode="json", exclude_none=True)
            if isinstance(task, TesTask)
            else dict(task)
        )
        return Task(self, self._read(CreateTaskResponse, "POST", f"{TES}/tasks", json=body).id)

    def submit(self, image: str, command: Sequence[str], **args: Unpack[TaskArguments]) -> Task:
        """Create a task from the task arguments (the CLI's options) and return at once."""
        return self.create(build_task(image, command, **args))

    def run(self, image: str, command: Sequence[str], **args: Unpack[TaskArguments]) -> Task:
        """Like :meth:`submit`, then wait until the task is final."""
        task = self.submit(image, command, **args)
        task.wait()
        return task

    # --- batches ----------------------------------------------------------

    def create_batch(self, request: BatchRequest | Mapping[str, object]) -> Batch:
        """Submit a batch (see ``POST /api/v1/batches``) in one round trip."""
        body = (
            request.model_dump(mode="json", exclude_none=True)
            if isinstance(request, BatchRequest)
            else dict(request)
        )
        created = self._read(CreateBatchResponse, "POST", "/api/v1/batches", json=body, timeout=600)
        return Batch(self, created.id, created.task_ids)

    def sweep(
        self,
        image: str,
        command: Sequence[str],
        params: Sequence[Mapping[str, object]] | Mapping[str, Sequence[object]],
        **args: Unpack[BatchArguments],
    ) -> Batch:
        """One task per parameter row (a list of rows, or a dict of value lists = the grid).

        ``{name}`` in the command, env, name and URLs takes each row's value.
        """
        rows = grid(params) if isinstance(params, Mapping) else [dict(r) for r in params]
        batch = batch_fields(args)
        return self.create_batch(
            {"template": _template(image, command, args), "params": rows, **batch}
        )

    def map(
        self,
        image: str,
        command: Sequence[str],
        *,
        over: str,
        to: str,
        chunk: int = 1,
        reduce: tuple[str, Sequence[str]] | None = None,
        **args: Unpack[BatchArguments],
    ) -> Batch:
        """One task per object matching ``over`` (per ``chunk`` objects); outputs under ``to``.

        ``reduce=(image, command)`` adds a task that runs after every map task is
        COMPLETE, with all their outputs as a directory input; it runs in the map
        tasks' ``workdir``, with their ``content`` files (often the script of both).
        """
        batch = batch_fields(args)
        doc: dict[str, object] = {
            "template": _template(image, command, args),
            "map": {"over": over, "to": to, "chunk": chunk},
        }
        if reduce is not None:
            doc["reduce"] = build_task(
                reduce[0],
                reduce[1],
                content=args.get("content"),
                workdir=args.get("workdir", DEFAULT_WORKDIR),
            )
        return self.create_batch({**doc, **batch})

    def batch(self, batch_id: str) -> Batch:
        self.batch_info(batch_id)
        return Batch(self, batch_id)

    def batch_info(self, batch_id: str) -> BatchInfo:
        return self._read(BatchInfo, "GET", f"/api/v1/batches/{batch_id}")

    def batches(self, limit: int = 50) -> list[BatchInfo]:
        """The newest batches first."""
        return self._read(BatchList, "GET", "/api/v1/batches", params={"limit": limit}).batches

    def cancel_batch(self, batch_id: str) -> int:
        """Cancel every unfinished member; how many there were."""
        return self._read(
            CancelBatchResponse, "POST", f"/api/v1/batches/{batch_id}:cancel"
        ).canceled

    def batch_report(self, batch_id: str) -> BatchReport:
        """Per member and total wall time, CPU, peak memory and cost; a sweep's scaling."""
        return self._read(BatchReport, "GET", f"/api/v1/batches/{batch_id}/report")

    # --- tasks, continued -------------------------------------------------

    def get(self, task_id: str, view: View | str = View.MINIMAL) -> TaskView:
        """The TES task; in the MINIMAL view only ``id`` and ``state`` are set."""
        return self._read(
            TaskView, "GET", f"{TES}/tasks/{task_id}", params={"view": str(View(view))}
        )

    def task(self, task_id: str) -> Task:
        self.get(task_id)
        return Task(self, task_id)

    def details(self, task_id: str) -> TaskDetails:
        """FULL task plus toolship's own facts (runtime, isolation, work directory)."""
        return self._read(TaskDetails, "GET", f"/api/v1/tasks/{task_id}")

    def tasks(
        self,
        *,
        state: TaskState | str | None = None,
        name: str | None = None,
        tags: Pairs = None,
        batch: str | None = None,
        view: View | str = View.BASIC,
        page_size: int = 256,
    ) -> Iterator[TaskView]:
        """Every matching task, newest first, fetching page after page as you iterate."""
        params: dict[str, str | int | list[str]] = {"view": str(View(view)), "page_size": page_size}
        if batch:
            tags = [*_pair_list(tags), f"toolship.batch={batch}"]
        if state:
            params["state"] = str(TaskState(str(state).upper()))
        if name:
            params["name_prefix"] = name
        pairs = (
            list(tags.items())
            if isinstance(tags, Mapping)
            else [t.partition("=")[::2] for t in tags or []]
        )
        if pairs:
            params["tag_key"] = [k for k, _ in pairs]
            params["tag_value"] = [v for _, v in pairs]
        token: str | None = None
        while True:
            page = self._read(
                ListTasksResponse,
                "GET",
                f"{TES}/tasks",
                params={**params, **({"page_token": token} if token else {})},
            )
            yield from page.tasks
            token = page.next_page_token
            if not token:
                return

    def cancel(self, task_id: str) -> None:
        self._send("POST", f"{TES}/tasks/{task_id}:cancel")

    def wait(self, task_id: str, timeout: float | None = None) -> TaskState:
        """Block until the task is final (long-polling, no busy loop)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 60.0 if deadline is None else max(0.0, min(60.0, deadline - time.monotonic()))
            result = self._read(
                TaskWait,
                "GET",
                f"/api/v1/tasks/{task_id}/wait",
                params={"timeout": left},
                timeout=left + 30,
            )
            if is_final(result.state) or (deadline is not None and time.monotonic() >= deadline):
                return result.state

    def as_completed(
        self, task_ids: Sequence[str], timeout: float | None = None
    ) -> Iterator[tuple[str, TaskState]]:
        """Each task's id and final state as it ends, the first to end first.

        For a loop that keeps N tasks running (a hyper-parameter search): take the
        first that ends, submit the next.  Each task is long-polled by the server's
        wait (a few threads, no busy loop); ``timeout`` bounds the whole wait, and
        TimeoutError says how many were still running.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        ids = list(dict.fromkeys(task_ids))

        def final(task_id: str) -> tuple[str, TaskState]:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            return task_id, self.wait(task_id, timeout=left)

        pool = ThreadPoolExecutor(max(1, min(16, len(ids))), thread_name_prefix="toolship-wait")
        try:
            futures = [pool.submit(final, t) for t in ids]
            for done, future in enumerate(as_completed(futures)):
                task_id, state = future.result()
                if not is_final(state):
                    raise TimeoutError(
                        f"{len(ids) - done} of {len(ids)} tasks were still running after "
                        f"{timeout:g} s (task {task_id} is {state.value})"
                    )
                yield task_id, state
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def logs(
        self,
        task_id: str,
        *,
        stream: str = "stdout",
        executor: int | None = None,
        follow: bool = False,
        attempt: int | None = None,
        rank: int | None = None,
        all_ranks: bool = False,
    ) -> Iterator[bytes]:
        """The raw bytes of a task's stdout/stderr; with ``follow``, until the task ends.

        ``attempt=1`` starts with the first attempt instead of the latest (retries follow);
        ``rank``: that rank's output of a multi-node task (0 is the first rank's);
        ``all_ranks``: every rank's, each line prefixed with its rank ("1: …") when the
        task runs on more than one node.
        """
        params: dict[str, str | int | bool] = {"stream": stream, "follow": follow}
        if attempt is not None:
            params["attempt"] = attempt
        if rank is not None:
            params["rank"] = rank
        if all_ranks:
            params["all_ranks"] = True
        if executor is not None:
            params["executor"] = executor
        yield from self._stream(f"/api/v1/tasks/{task_id}/logs", params)

    def output(self, task_id: str, n: int = 0) -> Iterator[bytes]:
        """The bytes of output file ``n`` of the task's latest attempt (its place in
        ``outputs``, from 0), read by the server with the task owner's rights: the client
        needs no access of its own to where it went (an object store, a shared disk)."""
        yield from self._stream(f"/api/v1/tasks/{task_id}/outputs/{n}", {})

    def service_info(self) -> ServiceInfo:
        return self._read(ServiceInfo, "GET", f"{TES}/service-info")

    def ui_link(self) -> str:
        """A URL that logs a browser in to the web UI as this client: good once, for a minute."""
        path = str(self._send("POST", "/api/v1/ui/links").json()["path"])
        return self.server + path


def _pair_list(tags: Pairs) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, Mapping):
        return [f"{k}={v}" for k, v in tags.items()]
    return list(tags)


def _template(image: str, command: Sequence[str], args: MemberArguments) -> dict[str, object]:
    return build_task(image, command, **args)
