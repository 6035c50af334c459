"""The fault-injection harness: a mixed workload on a real server, and the invariant.

A :class:`Workload` submits short and long tasks, a task with an S3 input, a batch of
three members one at a time, a task that waits for another (``after``) and one that
fails its first attempt and is retried.  Every executor first appends ``TASK_ID ATTEMPT``
to a file in a shared folder (``local.shared_dirs``), so the harness counts the runs,
and then writes an output of known bytes to S3.  A :class:`Watch` polls the tasks'
states from a thread while faults happen.

:func:`check` is issue 19's invariant, asserted once the fault has cleared: every task
reaches exactly one terminal state through valid transitions only; no attempt runs
twice; no output is lost or left partial; no container is left behind.  It prints the
recovery time: from the moment the fault cleared until every task was final.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, SLURM_DIR, leftover_containers
from tests.integration.servers import free_port
from tests.security.crashing import Server, wait_for
from toolship import Client
from toolship.embedded import EmbeddedServer
from toolship.states import FINAL_STATES, TRANSITIONS, TaskState

TES = "/ga4gh/tes/v1"
SIZE = 64 * 1024  # bytes of each output: more than one write, so a cut one would show
INPUT = os.urandom(1024 * 1024)  # the staged task's input, copied to its output
RETRY_CODE = 75  # the retried task's first attempt exits with it

# Each executor records its run before anything else; $OUT is its output file.
RECORD = 'echo "$TOOLSHIP_TASK_ID $TOOLSHIP_ATTEMPT" >> {runs}/runs.log'
PRODUCE = "yes {name} | head -c {size} > /work/out/result"


def payload(name: str) -> bytes:
    """What ``PRODUCE`` writes for a task named ``name``."""
    line = (name + "\n").encode()
    return (line * (SIZE // len(line) + 1))[:SIZE]


def sha256(data: bytes | None) -> str:
    return "missing" if data is None else hashlib.sha256(data).hexdigest()[:12]


@dataclass
class Bucket:
    """A moto S3 server in this process: stopped and started again, it keeps its objects."""

    name: str
    port: int = field(default_factory=free_port)
    _server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def read(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            body: bytes = self.client().get_object(Bucket=self.name, Key=key)["Body"].read()
        except ClientError:
            return None
        return body


@contextlib.contextmanager
def moto_bucket(env: pytest.MonkeyPatch, name: str) -> Iterator[Bucket]:
    """A bucket on a moto server of this test, and the variables that point the server at it."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        env.setenv(key, value)
    bucket = Bucket(name)
    bucket.start()
    env.setenv("TOOLSHIP_STORAGE__S3__ENDPOINT_URL", bucket.endpoint)
    try:
        bucket.client().create_bucket(Bucket=name)
        bucket.client().put_object(Bucket=name, Key="in/data.bin", Body=INPUT)
        yield bucket
    finally:
        bucket.stop()


@contextlib.contextmanager
def runs_folder(env: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder every container sees (``local.shared_dirs``), where tasks record their runs.

    Not under pytest's tmp_path: tasks run as ``local.task_user``, who cannot enter it.
    """
    folder = Path(tempfile.mkdtemp(prefix="toolship-runs-"))
    folder.chmod(0o777)
    env.setenv("TOOLSHIP_LOCAL__SHARED_DIRS", json.dumps([str(folder)]))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Planned:
    """One task of the workload: its id, the output key it writes, the bytes it must hold."""

    name: str
    id: str
    key: str
    expected: bytes
    attempts: int = 1  # attempts it takes to complete when nothing goes wrong


@dataclass
class Workload:
    """The mixed workload, submitted at once; ``tasks`` by name."""

    tasks: dict[str, Planned]

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.tasks.values()]


def submit_workload(
    client: Client, image: str, bucket: Bucket, runs: Path, prefix: str, *, retries: int = 0
) -> Workload:
    """Short and long tasks, S3 input and outputs, a batch, a dependency and a retry.

    ``retries``: every task is tried again that many times after a system error.
    """
    record = RECORD.format(runs=runs)

    def command(name: str, before: str = "", source: str = "") -> list[str]:
        make = f"cp {source} /work/out/result" if source else PRODUCE.format(name=name, size=SIZE)
        return ["sh", "-c", "; ".join(s for s in (record, before, "mkdir -p /work/out", make) if s)]

    def key(name: str) -> str:
        return f"{prefix}/{name}/result"

    def output(name: str) -> dict[str, str]:
        return {"/work/out/result": f"s3://{bucket.name}/{key(name)}"}

    tasks: dict[str, Planned] = {}

    again: dict[str, Any] = {"retries": retries} if retries else {}

    def one(name: str, expected: bytes | None = None, attempts: int = 1, **args: Any) -> str:
        args = {**again, **args}
        made = client.submit(image, args.pop("command"), name=name, outputs=output(name), **args)
        tasks[name] = Planned(name, made.id, key(name), expected or payload(name), attempts)
        return made.id

    one("short", command=command("short"))
    long_id = one("long", command=command("long", "sleep 3"))
    one(
        "staged",
        INPUT,
        command=command("staged", source="/work/in/data.bin"),
        inputs={"/work/in/data.bin": f"s3://{bucket.name}/in/data.bin"},
    )
    one("child", command=command("child"), after=[long_id])
    retry = f"if [ $TOOLSHIP_ATTEMPT -eq 1 ]; then exit {RETRY_CODE}; fi"
    one("retried", attempts=2, command=command("retried", retry),
        retries=retries + 1, retry_on=f"system-error,exit:{RETRY_CODE}")  # fmt: skip
    batch = client.sweep(
        image,
        command("member-{i}"),
        {"i": ["0", "1", "2"]},
        name="member-{i}",
        outputs=output("member-{i}"),
        max_parallel=1,
        **again,
    )
    for i, task_id in enumerate(batch.task_ids):
        name = f"member-{i}"
        tasks[name] = Planned(name, task_id, key(name), payload(name))
    return Workload(tasks)


def cluster(command: str) -> None:
    """``scripts/slurm-cluster.sh COMMAND`` on the tests' Slurm cluster."""
    subprocess.run(
        [str(ROOT / "scripts" / "slurm-cluster.sh"), command],
        env={**os.environ, "TOOLSHIP_SLURM_DIR": str(SLURM_DIR)},
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def crash(server: Server) -> None:
    """kill -9 the server; return once it has left the process table (a zombie not yet
    reaped still holds its replica name, and the restart would be refused)."""
    assert server.current is not None
    pid = server.current.pid
    server.kill()
    wait_for("the killed server reaped", lambda: not Path(f"/proc/{pid}").exists())


class Watch:
    """Every state each task is seen in, polled from a thread (a server that is down is
    skipped over): the harness checks each change against the transition table."""

    def __init__(self, url: Callable[[], str | None], token: Callable[[], str]) -> None:
        self._url, self._token = url, token
        self.seen: dict[str, list[TaskState]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            url = self._url()
            if url is not None:
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    self._read(url)
            self._stop.wait(0.1)

    def _read(self, url: str) -> None:
        headers = {"Authorization": f"Bearer {self._token()}"}
        params = {"view": "MINIMAL", "page_size": "1000"}
        r = httpx.get(f"{url}{TES}/tasks", params=params, headers=headers, timeout=2)
        for task in r.raise_for_status().json()["tasks"]:
            states = self.seen.setdefault(task["id"], [])
            state = TaskState(task["state"])
            if not states or states[-1] is not state:
                states.append(state)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class Session:
    """A running server's clients (the SDK's and raw HTTP), and a watch of its tasks."""

    client: Client
    http: httpx.Client
    watch: Watch


@contextlib.contextmanager
def session(server: EmbeddedServer) -> Iterator[Session]:
    auth = {"Authorization": f"Bearer {server.token}"}
    with (
        Watch(lambda: server.url, lambda: server.token) as watch,
        Client(server.url, server.token, timeout=30) as client,
        httpx.Client(base_url=server.url, headers=auth, timeout=30) as http,
    ):
        yield Session(client, http, watch)


def reachable(source: TaskState, target: TaskState) -> bool:
    """Whether the transition table leads from ``source`` to ``target`` (polls miss steps)."""
    todo, seen = [source], {source}
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt is target:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def wait_final(client: Client, ids: Collection[str], timeout: float = 120) -> dict[str, Any]:
    """Every task's FULL view once all are final; fails naming those still going."""
    deadline = time.monotonic() + timeout
    pending: set[str] = set(ids)
    while True:
        states = {i: client.get(i).state for i in pending}
        pending = {i for i, s in states.items() if s not in FINAL_STATES}
        if not pending:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"still not final after {timeout:.0f}s: {states}")
        time.sleep(0.1)
    return {i: client.get(i, view="FULL").model_dump(mode="json") for i in ids}


def system_logs(task: dict[str, Any]) -> str:
    return "\n".join(m for a in task.get("logs") or [] for m in a.get("system_logs") or [])


def reports_waiting(home: Path) -> bool:
    """The server's log says the attempts' reports wait for the database (engine/writer.py)."""
    return "task reports wait for it" in (home / "server.log").read_text()


def run_counts(runs: Path) -> Counter[tuple[str, int]]:
    """How often each (task id, attempt) ran, from the lines the executors appended."""
    with contextlib.suppress(FileNotFoundError):
        lines = (runs / "runs.log").read_text().split("\n")
        return Counter((t, int(a)) for t, a in (ln.split() for ln in lines if ln))
    return Counter()


def untroubled(planned: Planned, task: dict[str, Any]) -> bool:
    """COMPLETE in the attempts it takes when nothing goes wrong: the fault cost nothing."""
    return task["state"] == "COMPLETE" and len(task.get("logs") or []) == planned.attempts


@dataclass
class Outcome:
    """What :func:`check` found: each task's final view by name, and the recovery time."""

    tasks: dict[str, dict[str, Any]]
    recovery: float


def check(
    fault: str,
    client: Client,
    workload: Workload,
    bucket: Bucket,
    runs: Path,
    watch: Watch,
    cleared: float,
    allowed: Callable[[Planned, dict[str, Any]], bool] = untroubled,
) -> Outcome:
    """Issue 19's invariant after ``fault`` cleared at ``cleared`` (time.monotonic()).

    ``allowed(task, view)`` says whether a final task is one the fault may leave (by
    default: :func:`untroubled`).  No attempt may run twice; a COMPLETE task's last
    attempt ran and its output is whole; any other task left its whole output or none.
    """
    done = wait_final(client, workload.ids)
    recovery = time.monotonic() - cleared
    time.sleep(0.3)  # one more poll of the watch: final states must not move
    counts = run_counts(runs)
    by_name: dict[str, dict[str, Any]] = {}
    for planned in workload.tasks.values():
        task = done[planned.id]
        by_name[planned.name] = task
        what = f"{fault}: task {planned.name} ({planned.id}) {task['state']}"
        assert allowed(planned, task), f"{what}; system logs:\n{system_logs(task)}"
        _check_states(what, watch.seen.get(planned.id, []), TaskState(task["state"]))
        attempts = len(task.get("logs") or [])
        ran = {a: n for (t, a), n in counts.items() if t == planned.id}
        assert all(n == 1 for n in ran.values()), f"{what}: an attempt ran twice: {ran}"
        assert all(1 <= a <= attempts for a in ran), f"{what}: runs {ran}, {attempts} attempt(s)"
        stored = bucket.read(planned.key)
        if task["state"] == "COMPLETE":
            assert attempts in ran, f"{what}: its last attempt never ran: {ran}"
            if attempts == planned.attempts:  # no attempt was added: each ran once
                assert sorted(ran) == list(range(1, attempts + 1)), f"{what}: ran {ran}"
            assert stored == planned.expected, f"{what}: output {sha256(stored)}"
        else:  # a task that failed leaves its whole output or none: never a part of it
            assert stored in (None, planned.expected), f"{what}: partial output {sha256(stored)}"
    for planned in workload.tasks.values():
        assert client.get(planned.id).state == done[planned.id]["state"], "a final state moved"
        no_containers(planned.id)
    print(f"\n{fault}: {len(done)} tasks final {recovery:.1f} s after the fault cleared")
    return Outcome(by_name, recovery)


def _check_states(what: str, seen: list[TaskState], final: TaskState) -> None:
    """Each observed change is a path of the transition table; one final state, last."""
    steps = [TaskState.UNKNOWN, *seen]
    for a, b in itertools.pairwise(steps):
        assert reachable(a, b), f"{what}: went from {a} to {b}: {seen}"
    assert [s for s in seen if s in FINAL_STATES] in ([], [final]), f"{what}: {seen}"


def no_containers(task_id: str, timeout: float = 30) -> None:
    """The task's containers are all gone (their removal may follow the final state)."""
    deadline = time.monotonic() + timeout
    while (left := leftover_containers(task_id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"task {task_id} left containers behind: {left}"
