"""``toolship worker``: one attempt on a compute node, reported to the server over HTTP.

The node needs no database and no configuration: the worker fetches its job
(task, options, storage settings) with its per-task token, runs the same
:class:`~toolship.worker.worker.Worker` as the local executor, and reports
each step.  Reports are sent one at a time and retried while the server is
unreachable (a server restart loses nothing); an answer saying the attempt is
over, or that the task was cancelled, stops the executors.  SIGTERM (what
``scancel`` sends) stops them too: Slurm does not know the containers.

Every Slurm job starts a fresh worker, so its start-up is part of every task's
cost: this module loads only what an attempt needs.  It talks to the server
with the standard library's ``http.client`` (one keep-alive connection, used
from a thread) rather than httpx, whose import alone — it loads its command-line
client, click, rich and pygments with it — costs more CPU than the rest of a
trivial job's worker; remote storage (fsspec) loads with the first remote URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.client
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel

from toolship.errors import ServerUnavailable, ToolshipError
from toolship.models import TaskLog
from toolship.records import ReportAnswer, RuntimeRecord, WorkerJob, WorkerReport
from toolship.runtime import IdMap, get_runtime
from toolship.runtime.usage import node_accounting
from toolship.states import TaskState
from toolship.storage import make_registry
from toolship.storage.local import release_mounts
from toolship.worker.ranks import local_ranks, slurm_ranks
from toolship.worker.slurm_gpus import allotted_gpus, node_gpus
from toolship.worker.worker import Worker, WorkerEnv

__all__ = ["HttpReporter", "ServerConnection", "main", "read_token", "run_remote"]

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 1.0  # a dropped keep-alive connection fails sooner than this
SLURM_JOB_LABEL = "io.toolship.slurm-job"


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


@dataclass(frozen=True)
class Response:
    status_code: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise ToolshipError(
                f"the toolship server refused a worker request (HTTP {self.status_code}): "
                f"{self.text[:500]}"
            )


class ServerConnection:
    """Requests to the toolship server over one keep-alive HTTP(S) connection.

    Blocking (``http.client``); :meth:`request` runs it in a thread.  A dropped
    connection is opened again once before the error is reported.
    """

    def __init__(self, server: str, token: str, *, timeout: float = 60.0) -> None:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ServerUnavailable(
                f"{server!r} is not a server URL; give --server http(s)://HOST:PORT"
            )
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _request(self, method: str, path: str, body: bytes | None) -> Response:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        with self._lock:
            for again in (True, False):
                if self._conn is None:
                    self._conn = self._connect()
                began = time.monotonic()
                try:
                    self._conn.request(method, self._prefix + path, body=body, headers=headers)
                    answer = self._conn.getresponse()
                    return Response(answer.status, answer.read())
                except (OSError, http.client.HTTPException):
                    self._conn.close()
                    self._conn = None
                    # A keep-alive connection the server closed while idle fails at once:
                    # open another.  One that failed after waiting is an outage, which
                    # the caller must hear of (it retries, and the record says so).
                    if not again or time.monotonic() - began > STALE_SECONDS:
                        raise
        raise AssertionError("unreachable")

    async def request(self, method: str, path: str, payload: BaseModel | None = None) -> Response:
        body = None if payload is None else payload.model_dump_json(exclude_none=True).encode()
        return await asyncio.to_thread(self._request, method, path, body)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class HttpReporter:
    """The worker's :class:`~toolship.worker.worker.Reporter` over HTTP."""

    def __init__(
        self,
        server: ServerConnection,
        task_id: str,
        *,
        attempt: int | None = None,
        patience: float = 600.0,
    ) -> None:
        self.server = server
        self.task_id = task_id
        self.attempt_number = attempt
        self.patience = patience
        # Called when the server says stop (the worker's cancel, once it exists), with why
        # when the server refused the worker (None: the task was cancelled).
        self.stop: Callable[[str | None], None] = lambda why: None
        self._lock = asyncio.Lock()
        self._down_since: float | None = None  # when the first unanswered report was sent
        self._problem = ""
        self._note = ""

    def _failed(self, problem: str, sent: float) -> None:
        if self._down_since is None:
            self._down_since, self._problem = sent, problem

    def _report(
        self, state: TaskState | None, attempt: TaskLog, runtime: RuntimeRecord
    ) -> WorkerReport:
        """The report as sent now: after an outage, its attempt says so (the record's
        only trace of a network cut the worker waited out)."""
        if self._down_since is not None:
            node = os.environ.get("SLURMD_NODENAME") or os.uname().nodename
            self._note = (
                f"the toolship server did not answer this attempt's worker on {node} for "
                f"{time.monotonic() - self._down_since:.0f} s ({self._problem}); the worker "
                "held its reports and sent them when the server answered again"
            )
            logs = [*(attempt.system_logs or []), self._note]
            attempt = attempt.model_copy(update={"system_logs": logs})
        return WorkerReport(
            state=state, attempt=attempt, runtime=runtime, attempt_number=self.attempt_number
        )

    async def update(
        self,
        state: TaskState | None,
        attempt: TaskLog,
        runtime: RuntimeRecord,
        *,
        wait: bool = True,  # every report is sent at once: the server is the record
    ) -> bool:
        async with self._lock:
            response = await send(
                self.server, "POST", f"/api/v1/worker/tasks/{self.task_id}/report",
                functools.partial(self._report, state, attempt, runtime),
                patience=self.patience, failed=self._failed,
            )  # fmt: skip
            if self._down_since is not None:  # delivered: later reports keep the note
                attempt.system_logs = [*(attempt.system_logs or []), self._note]
                self._down_since = None
        if response.status_code in (401, 404, 409):
            # Not a cancel: say what the server said, so the attempt's record tells them apart.
            self.stop(f"the toolship server refused this attempt's worker (HTTP "
                      f"{response.status_code}): {response.text[:500]}")  # fmt: skip
            return False
        response.raise_for_status()
        answer = ReportAnswer.model_validate_json(response.body)
        if answer.cancel or not answer.ok:
            self.stop(None)
        return answer.ok


async def send(
    server: ServerConnection,
    method: str,
    path: str,
    payload: BaseModel | Callable[[], BaseModel] | None = None,
    *,
    patience: float,
    failed: Callable[[str, float], None] = lambda problem, sent: None,
) -> Response:
    """One request, retried with back-off while the server is down or failing (5xx).

    ``payload``: the body, or what makes it afresh for each try; ``failed(problem,
    sent)`` hears of each unanswered try and when it was sent.
    """
    deadline = time.monotonic() + patience
    delay = 0.5
    while True:
        sent = time.monotonic()
        try:
            body = payload() if callable(payload) else payload
            response = await server.request(method, path, body)
            if response.status_code < 500:
                return response
            problem = _failure(response)
        except (OSError, http.client.HTTPException) as exc:
            problem = str(exc) or type(exc).__name__
        failed(problem, sent)
        if time.monotonic() + delay > deadline:
            raise ServerUnavailable(f"cannot reach the toolship server ({problem})")
        log.warning("server unreachable (%s); retrying in %.1f s", problem, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 15.0)


def _failure(response: Response) -> str:
    """A failing answer in a line: its status, and what the server said (a replica that
    forwards a worker's request names the one it waits for)."""
    detail = ""
    with contextlib.suppress(ValueError):
        body = json.loads(response.body)
        if isinstance(body, dict):
            detail = str(body.get("detail") or "")
    return f"HTTP {response.status_code}" + (f": {detail[:300]}" if detail else "")


async def run_remote(
    server: str, task_id: str, token: str, attempt: int | None = None
) -> TaskState | None:
    """Run the task's attempt here; None when the server says it is not ours to run.

    ``attempt``: the attempt this worker was sent for (its batch script says); the server
    refuses a worker whose attempt is over.  None takes the task's current attempt.
    """
    conn = ServerConnection(server, token)
    path = f"/api/v1/worker/tasks/{task_id}" + (f"?attempt={attempt}" if attempt else "")
    try:
        response = await send(conn, "GET", path, patience=300)
        if response.status_code in (401, 404, 409):
            log.error("the server refused this worker: %s", response.text)
            return None
        response.raise_for_status()
        doc = WorkerJob.model_validate_json(response.body)
        job = doc.job()
        log.info(
            "task %s attempt %d on %s (Slurm job %s)", task_id, job.attempt_number,
            os.environ.get("SLURMD_NODENAME", os.uname().nodename),
            os.environ.get("SLURM_JOB_ID", "-"),
        )  # fmt: skip
        e = doc.env
        user = e.task_user if os.geteuid() == 0 else (os.getuid(), os.getgid())
        ranks = None
        if job.options.nodes > 1:
            mpi, slots = job.options.mpi_launcher, job.options.cpus
            if "SLURM_JOB_NODELIST" in os.environ:
                ranks = await asyncio.to_thread(
                    functools.partial(slurm_ranks, job.options.nodes, mpi=mpi, slots=slots)
                )
            else:
                ranks = local_ranks(job.options.nodes, 29500, mpi=mpi, slots=slots)
        runtime = get_runtime(job.options.runtime)
        # The devices Slurm allotted to this job, and only those (worker.slurm_gpus).
        gpus = allotted_gpus(
            os.environ, await asyncio.to_thread(node_gpus), containers=runtime.isolated
        )
        env = WorkerEnv(
            work_dir=e.work_dir,
            storage=make_registry(
                doc.storage,
                excluded=e.own_files,
                reader=user,
                owner=e.output_owner,
                mount=job.options.nodes == 1,  # other nodes would not see a mount made here
            ),
            runtime=runtime,
            transfers=e.transfers,
            transfer_attempts=e.transfer_attempts,
            log_tail_bytes=e.log_tail_bytes,
            stop_grace_seconds=e.stop_grace_seconds,
            pids_limit=e.pids_limit,
            shared_dirs=tuple(e.shared_dirs),
            writable_shared_dirs=tuple(e.writable_shared_dirs),
            ranks=ranks,
            labels=job_labels(os.environ),
            user=user,
            idmap=IdMap.for_task(user, e.task_subids),
            pull_from=tuple(e.pull_from),
            gpus=gpus,
            accounting=e.accounting and job.options.nodes == 1 and node_accounting(runtime.name),
        )
        reporter = HttpReporter(conn, task_id, attempt=job.attempt_number)
        worker = Worker(job, env, reporter)
        reporter.stop = worker.cancel
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.cancel)
        beat = asyncio.create_task(_heartbeat(worker, reporter))
        try:
            return await worker.run()
        finally:
            release_mounts(env.work_dir / task_id / str(job.attempt_number))
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
    finally:
        conn.close()


def job_labels(environ: Mapping[str, str]) -> dict[str, str]:
    """Labels tying the attempt's containers to the batch job that runs them.

    Slurm does not know podman's containers: a worker killed before it could stop its
    own (``scancel`` under load, past ``KillWait``) would leave them running.  The node
    epilog (``scripts/slurm-epilog.sh``) removes every container labelled with the job
    that just ended.
    """
    job_id = environ.get("SLURM_JOB_ID")
    return {SLURM_JOB_LABEL: job_id} if job_id else {}


async def _heartbeat(worker: Worker, reporter: HttpReporter) -> None:
    """Tells the server the worker lives, and learns of a cancel Slurm could not deliver."""
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        with contextlib.suppress(Exception):
            await reporter.update(None, worker.attempt, worker.rt)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m toolship.worker`` (what batch scripts run) and ``toolship worker``."""
    parser = argparse.ArgumentParser(
        prog="toolship worker",
        description="Run one task's attempt here and report to the server (what Slurm jobs "
        "run). Fetches the task with its per-task token, stages the inputs in, runs the "
        "executors with the node's container runtime, stages the outputs out and reports "
        "every step over HTTP. SIGTERM (scancel) stops the executors.",
    )
    parser.add_argument("--server", required=True, metavar="URL",
                        help="the toolship server that owns the task")  # fmt: skip
    parser.add_argument("--task", required=True, metavar="ID", help="the task to run")
    parser.add_argument(
        "--attempt", type=int, metavar="N",
        help="the attempt this job was submitted for (the server refuses a worker of an "
        "attempt that is over); default: the task's current attempt",
    )  # fmt: skip
    parser.add_argument(
        "--token-file", type=Path, metavar="FILE",
        help="file holding the task's worker token (default: TOOLSHIP_WORKER_TOKEN_FILE, or "
        "the token itself in TOOLSHIP_WORKER_TOKEN); never pass a token as an argument",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        state = asyncio.run(
            run_remote(args.server, args.task, read_token(args.token_file), args.attempt)
        )
    except ToolshipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"task {args.task}: {state.value if state else 'not run (refused by the server)'}")
    return 0 if state is not None else 3
