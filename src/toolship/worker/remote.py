"""``toolship worker``: one attempt on a compute node, reported to the server over HTTP.

The node needs no database and no configuration: the worker fetches its job
(task, options, storage settings) with its per-task token, runs the same
:class:`~toolship.worker.worker.Worker` as the local executor, and reports
each step.  Reports are sent one at a time and retried while the server is
unreachable (a server restart loses nothing); an answer saying the attempt is
over, or that the task was cancelled, stops the executors.  SIGTERM (what
``scancel`` sends) stops them too: Slurm does not know the containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from toolship.config import StorageSettings
from toolship.engine.options import read_options
from toolship.errors import ServerUnavailable
from toolship.models import Task
from toolship.runtime import get_runtime
from toolship.states import TaskState
from toolship.storage import make_registry
from toolship.worker.ranks import local_ranks, slurm_ranks
from toolship.worker.worker import Job, Worker, WorkerEnv

__all__ = ["HttpReporter", "read_job", "read_token", "run_remote"]

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0


def read_token(token_file: Path | None) -> str:
    """The worker token: from TOOLSHIP_WORKER_TOKEN, else the file the batch script names."""
    token = os.environ.get("TOOLSHIP_WORKER_TOKEN", "").strip()
    path = token_file or (Path(p) if (p := os.environ.get("TOOLSHIP_WORKER_TOKEN_FILE")) else None)
    if not token and path is not None:
        token = path.read_text().strip()
    if not token:
        raise ServerUnavailable(
            "no worker token: set TOOLSHIP_WORKER_TOKEN_FILE (the batch script does)"
        )
    return token


class HttpReporter:
    """The worker's :class:`~toolship.worker.worker.Reporter` over HTTP."""

    def __init__(self, client: httpx.AsyncClient, task_id: str, *, patience: float = 600.0) -> None:
        self.client = client
        self.task_id = task_id
        self.patience = patience
        # Called when the server says stop (the worker's cancel, once it exists).
        self.stop: Callable[[], None] = lambda: None
        self._lock = asyncio.Lock()

    async def update(
        self,
        state: TaskState | None,
        attempt: dict[str, Any],
        runtime: dict[str, Any],
        *,
        wait: bool = True,  # every report is sent at once: the server is the record
    ) -> bool:
        body = {"state": state.value if state else None, "attempt": attempt, "runtime": runtime}
        async with self._lock:
            response = await send(
                self.client, "POST", f"/api/v1/worker/tasks/{self.task_id}/report",
                json=body, patience=self.patience,
            )  # fmt: skip
        if response.status_code in (401, 404, 409):
            self.stop()
            return False
        response.raise_for_status()
        answer = response.json()
        if answer.get("cancel") or not answer.get("ok"):
            self.stop()
        return bool(answer.get("ok"))


async def send(
    client: httpx.AsyncClient, method: str, url: str, *, patience: float, **kwargs: Any
) -> httpx.Response:
    """One request, retried with back-off while the server is down or failing (5xx)."""
    deadline = time.monotonic() + patience
    delay = 0.5
    while True:
        try:
            response = await client.request(method, url, **kwargs)
            if response.status_code < 500:
                return response
            problem = f"HTTP {response.status_code}"
        except httpx.TransportError as exc:
            problem = str(exc) or type(exc).__name__
        if time.monotonic() + delay > deadline:
            raise ServerUnavailable(f"cannot reach the toolship server ({problem})")
        log.warning("server unreachable (%s); retrying in %.1f s", problem, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 15.0)


def read_job(doc: dict[str, Any]) -> Job:
    task = Task.model_validate(doc["task"])
    defaults = doc["defaults"]
    options = read_options(
        task.resources,
        default_runtime=defaults["runtime"],
        default_cpus=int(defaults["cpus"]),
        default_memory_gb=float(defaults["memory_gb"]),
    )
    return Job(
        task_id=doc["task_id"],
        task=task,
        options=options,
        attempt=doc.get("attempt"),
        runtime=dict(doc.get("runtime") or {}),
        attempt_number=int(doc["attempt_number"]),
        credentials=dict(doc.get("credentials") or {}),
    )


async def run_remote(server: str, task_id: str, token: str) -> TaskState | None:
    """Run the task's attempt here; None when the server says it is not ours to run."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.rstrip("/"), headers=headers, timeout=60) as hc:
        response = await send(hc, "GET", f"/api/v1/worker/tasks/{task_id}", patience=300)
        if response.status_code in (401, 404, 409):
            log.error("the server refused this worker: %s", response.text)
            return None
        response.raise_for_status()
        doc = response.json()
        job = read_job(doc)
        log.info(
            "task %s attempt %d on %s (Slurm job %s)", task_id, job.attempt_number,
            os.environ.get("SLURMD_NODENAME", os.uname().nodename),
            os.environ.get("SLURM_JOB_ID", "-"),
        )  # fmt: skip
        e = doc["env"]
        ranks = None
        if job.options.nodes > 1:
            if "SLURM_JOB_NODELIST" in os.environ:
                ranks = await asyncio.to_thread(slurm_ranks, job.options.nodes)
            else:
                ranks = local_ranks(job.options.nodes, 29500)
        env = WorkerEnv(
            work_dir=Path(e["work_dir"]),
            storage=make_registry(StorageSettings.model_validate(doc["storage"])),
            runtime=get_runtime(job.options.runtime),
            transfers=int(e["transfers"]),
            transfer_attempts=int(e["transfer_attempts"]),
            log_tail_bytes=int(e["log_tail_bytes"]),
            stop_grace_seconds=int(e["stop_grace_seconds"]),
            pids_limit=int(e["pids_limit"]),
            shared_dirs=tuple(Path(d) for d in e["shared_dirs"]),
            ranks=ranks,
        )
        reporter = HttpReporter(hc, task_id)
        worker = Worker(job, env, reporter)
        reporter.stop = worker.cancel
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.cancel)
        beat = asyncio.create_task(_heartbeat(worker, reporter))
        try:
            return await worker.run()
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat


async def _heartbeat(worker: Worker, reporter: HttpReporter) -> None:
    """Tells the server the worker lives, and learns of a cancel Slurm could not deliver."""
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        with contextlib.suppress(Exception):
            await reporter.update(None, worker.attempt, worker.rt)
