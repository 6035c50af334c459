"""The Python SDK: ``toolship.Client`` talks to a toolship server over HTTP (httpx).

With no server given (argument or ``TOOLSHIP_SERVER``) it starts — or reuses —
the local embedded server, exactly as the CLI does.  Argument names match the
CLI's options::

    from toolship import Client

    client = Client()
    task = client.run("localhost/toolship-busybox", ["sh", "-c", "echo hi"])
    print(task.state, task.logs())
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from toolship.errors import BY_STATUS, ServerUnavailable, ToolshipError
from toolship.models import View
from toolship.spec import Pairs, build_task, grid
from toolship.states import TaskState, is_final

__all__ = ["Batch", "Client", "Task"]

TES = "/ga4gh/tes/v1"


class Task:
    """A handle on one task of a server."""

    def __init__(self, client: Client, task_id: str) -> None:
        self.client = client
        self.id = task_id

    def __repr__(self) -> str:
        return f"Task({self.id!r})"

    @property
    def state(self) -> TaskState:
        return TaskState(self.client.get(self.id)["state"])

    def info(self, view: View | str = View.FULL) -> dict[str, Any]:
        """The TES task document in the given view."""
        return self.client.get(self.id, view=view)

    def wait(self, timeout: float | None = None) -> TaskState:
        """Block until the task is final (or ``timeout`` seconds pass); return its state."""
        return self.client.wait(self.id, timeout=timeout)

    def logs(self, stream: str = "stdout", executor: int | None = None) -> str:
        """The full stdout (or stderr) of the latest attempt, as text."""
        data = b"".join(self.client.logs(self.id, stream=stream, executor=executor))
        return data.decode("utf-8", errors="replace")

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """Output files of the latest attempt: ``url``, ``path``, ``size_bytes``."""
        logs = self.info(View.BASIC).get("logs") or []
        return list(logs[-1].get("outputs", [])) if logs else []

    @property
    def exit_codes(self) -> list[int]:
        logs = self.info(View.BASIC).get("logs") or []
        return [ex["exit_code"] for ex in logs[-1].get("logs", [])] if logs else []

    def cancel(self) -> None:
        self.client.cancel(self.id)


class Batch:
    """A handle on a batch (sweep, map or task list) of a server."""

    def __init__(self, client: Client, batch_id: str, task_ids: Sequence[str] = ()) -> None:
        self.client = client
        self.id = batch_id
        self.task_ids = list(task_ids)

    def __repr__(self) -> str:
        return f"Batch({self.id!r})"

    def info(self) -> dict[str, Any]:
        """Size, aggregated state and member counts by state."""
        return self.client.batch_info(self.id)

    @property
    def state(self) -> TaskState:
        return TaskState(self.info()["state"])

    def tasks(self, view: View | str = View.BASIC) -> Iterator[dict[str, Any]]:
        return self.client.tasks(batch=self.id, view=view)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until no member is queued or running (or ``timeout``); return the info."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.1
        while True:
            info = self.info()
            counts = info["counts"]
            if not any(counts.get(s, 0) for s in ("QUEUED", "INITIALIZING", "RUNNING")):
                return info
            if deadline is not None and time.monotonic() >= deadline:
                return info
            time.sleep(pause)
            pause = min(1.0, pause * 1.5)

    def cancel(self) -> int:
        return self.client.cancel_batch(self.id)

    def report(self) -> dict[str, Any]:
        return self.client.batch_report(self.id)


class Client:
    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        server = server or os.environ.get("TOOLSHIP_SERVER") or None
        token = token or os.environ.get("TOOLSHIP_TOKEN") or None
        if server is None:
            from toolship.embedded import ensure_server

            embedded = ensure_server()
            server, token = embedded.url, token or embedded.token
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=self.server, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"cannot reach toolship at {self.server}: {exc}") from exc
        _raise_for(response)
        return response.json()

    # --- tasks ------------------------------------------------------------

    def create(self, task: Mapping[str, Any]) -> Task:
        """Submit a TES task document as is."""
        return Task(self, self._request("POST", f"{TES}/tasks", json=dict(task))["id"])

    def submit(
        self,
        image: str,
        command: Sequence[str],
        *,
        inputs: Pairs = None,
        outputs: Pairs = None,
        content: Pairs = None,
        env: Pairs = None,
        workdir: str | None = "/work",
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
        gpus: int | None = None,
        nodes: int | None = None,
        params: Pairs = None,
        retries: int | None = None,
        retry_on: str | None = None,
        after: Sequence[str] = (),
    ) -> Task:
        """Create a task from CLI-style arguments and return at once."""
        return self.create(
            build_task(
                image,
                command,
                inputs=inputs,
                outputs=outputs,
                content=content,
                env=env,
                workdir=workdir,
                volumes=volumes,
                cpu=cpu,
                memory=memory,
                disk=disk,
                timeout=timeout,
                network=network,
                name=name,
                tags=tags,
                runtime=runtime,
                priority=priority,
                sync=sync,
                writable_inputs=writable_inputs,
                gpus=gpus,
                nodes=nodes,
                params=params,
                retries=retries,
                retry_on=retry_on,
                after=after,
            )
        )

    def run(self, image: str, command: Sequence[str], **kwargs: Any) -> Task:
        """Like :meth:`submit`, then wait until the task is final."""
        task = self.submit(image, command, **kwargs)
        task.wait()
        return task

    # --- batches ----------------------------------------------------------

    def create_batch(self, request: Mapping[str, Any]) -> Batch:
        """Submit a batch document (see ``POST /api/v1/batches``) in one round trip."""
        result = self._request("POST", "/api/v1/batches", json=dict(request), timeout=600)
        return Batch(self, result["id"], result["task_ids"])

    def sweep(
        self,
        image: str,
        command: Sequence[str],
        params: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        *,
        max_parallel: int | None = None,
        priority: int | None = None,
        batch_timeout: str | None = None,
        batch_name: str | None = None,
        **task: Any,
    ) -> Batch:
        """One task per parameter row (a list of rows, or a dict of value lists = the grid).

        ``{name}`` in the command, env, name and URLs takes each row's value.
        """
        rows = grid(params) if isinstance(params, Mapping) else [dict(r) for r in params]
        doc: dict[str, Any] = {"template": build_task(image, command, **task), "params": rows}
        return self.create_batch(_batch_doc(doc, max_parallel, priority, batch_timeout, batch_name))

    def map(
        self,
        image: str,
        command: Sequence[str],
        *,
        over: str,
        to: str,
        chunk: int = 1,
        reduce: tuple[str, Sequence[str]] | None = None,
        max_parallel: int | None = None,
        priority: int | None = None,
        batch_timeout: str | None = None,
        batch_name: str | None = None,
        **task: Any,
    ) -> Batch:
        """One task per object matching ``over`` (per ``chunk`` objects); outputs under ``to``.

        ``reduce=(image, command)`` adds a task that runs after every map task is
        COMPLETE, with all their outputs as a directory input.
        """
        doc: dict[str, Any] = {
            "template": build_task(image, command, **task),
            "map": {"over": over, "to": to, "chunk": chunk},
        }
        if reduce is not None:
            doc["reduce"] = build_task(reduce[0], reduce[1])
        return self.create_batch(_batch_doc(doc, max_parallel, priority, batch_timeout, batch_name))

    def batch(self, batch_id: str) -> Batch:
        self.batch_info(batch_id)
        return Batch(self, batch_id)

    def batch_info(self, batch_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/api/v1/batches/{batch_id}")
        return result

    def batches(self, limit: int = 50) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request(
            "GET", "/api/v1/batches", params={"limit": limit}
        )["batches"]
        return result

    def cancel_batch(self, batch_id: str) -> int:
        """Cancel every unfinished member; how many there were."""
        return int(self._request("POST", f"/api/v1/batches/{batch_id}:cancel")["canceled"])

    def batch_report(self, batch_id: str) -> dict[str, Any]:
        """Per member and total wall time, CPU, peak memory and cost; a sweep's scaling."""
        result: dict[str, Any] = self._request("GET", f"/api/v1/batches/{batch_id}/report")
        return result

    # --- tasks, continued -------------------------------------------------

    def get(self, task_id: str, view: View | str = View.MINIMAL) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "GET", f"{TES}/tasks/{task_id}", params={"view": str(View(view))}
        )
        return result

    def task(self, task_id: str) -> Task:
        self.get(task_id)
        return Task(self, task_id)

    def details(self, task_id: str) -> dict[str, Any]:
        """FULL task plus toolship's own facts (runtime, isolation, work directory)."""
        result: dict[str, Any] = self._request("GET", f"/api/v1/tasks/{task_id}")
        return result

    def tasks(
        self,
        *,
        state: TaskState | str | None = None,
        name: str | None = None,
        tags: Pairs = None,
        batch: str | None = None,
        view: View | str = View.BASIC,
        page_size: int = 256,
    ) -> Iterator[dict[str, Any]]:
        """Every matching task, newest first, fetching page after page as you iterate."""
        params: dict[str, Any] = {"view": str(View(view)), "page_size": page_size}
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
            page = self._request(
                "GET", f"{TES}/tasks", params={**params, **({"page_token": token} if token else {})}
            )
            yield from page.get("tasks", [])
            token = page.get("next_page_token")
            if not token:
                return

    def cancel(self, task_id: str) -> None:
        self._request("POST", f"{TES}/tasks/{task_id}:cancel")

    def wait(self, task_id: str, timeout: float | None = None) -> TaskState:
        """Block until the task is final (long-polling, no busy loop)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 60.0 if deadline is None else max(0.0, min(60.0, deadline - time.monotonic()))
            result = self._request(
                "GET",
                f"/api/v1/tasks/{task_id}/wait",
                params={"timeout": left},
                timeout=left + 30,
            )
            state = TaskState(result["state"])
            if is_final(state) or (deadline is not None and time.monotonic() >= deadline):
                return state

    def logs(
        self,
        task_id: str,
        *,
        stream: str = "stdout",
        executor: int | None = None,
        follow: bool = False,
        attempt: int | None = None,
    ) -> Iterator[bytes]:
        """The raw bytes of a task's stdout/stderr; with ``follow``, until the task ends.

        ``attempt=1`` starts with the first attempt instead of the latest (retries follow).
        """
        params: dict[str, Any] = {"stream": stream, "follow": follow}
        if attempt is not None:
            params["attempt"] = attempt
        if executor is not None:
            params["executor"] = executor
        try:
            with self.http.stream(
                "GET", f"/api/v1/tasks/{task_id}/logs", params=params, timeout=None
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                yield from response.iter_raw()
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"cannot reach toolship at {self.server}: {exc}") from exc

    def service_info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"{TES}/service-info")
        return result


def _pair_list(tags: Pairs) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, Mapping):
        return [f"{k}={v}" for k, v in tags.items()]
    return list(tags)


def _batch_doc(
    doc: dict[str, Any],
    max_parallel: int | None,
    priority: int | None,
    timeout: str | None,
    name: str | None,
) -> dict[str, Any]:
    extra = {"max_parallel": max_parallel, "priority": priority, "timeout": timeout, "name": name}
    return {**doc, **{k: v for k, v in extra.items() if v is not None}}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json().get("detail") or response.text
    except ValueError:
        detail = response.text
    cls = BY_STATUS.get(response.status_code, ToolshipError)
    raise cls(str(detail))
