"""Three replicas on one PostgreSQL database behind nginx: one killed -9, nothing lost.

Real processes (``toolship serve`` r1, r2, r3), a real nginx in front, real podman
containers.  Clients use nginx's one URL: tasks land on every replica; a cancel sent to
a replica that does not run the task, and a task that runs after one on another
replica, work; the replica running the most tasks is killed -9 while they run.  Its
tasks are adopted by another replica, each ends in exactly one terminal state, and
none runs twice (each run appends a line to a shared file); a replica that ran none of
them reads an adopted task's log (the replicas share one home).  The killed replica
comes back under its name; a second server under a live replica's name is refused.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import leftover_containers
from tests.resilience.replicas import Nginx, Replica, runs_folder, start_all
from toolship.states import FINAL_STATES

TES = "/ga4gh/tes/v1"
FINAL = {s.value for s in FINAL_STATES}
SECONDS = 4  # each task's run: long enough to be killed under
TASKS = 9


@pytest.fixture
def runs() -> Iterator[Path]:
    folder = runs_folder()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def create(client: httpx.Client, image: str, runs: Path, name: str, **extra: Any) -> str:
    seconds = extra.pop("seconds", SECONDS)
    record = f'echo "$TOOLSHIP_TASK_ID $TOOLSHIP_ATTEMPT" >> {runs}/runs.log'
    command = ["sh", "-c", f"{record}; echo ran {name}; sleep {seconds}"]
    doc = {
        "name": name,
        "executors": [{"image": image, "command": command}],
        **extra,
    }
    task_id: str = client.post(f"{TES}/tasks", json=doc).raise_for_status().json()["id"]
    return task_id


def replica_of(client: httpx.Client, task_id: str) -> str:
    found: str = client.get(f"/api/v1/tasks/{task_id}").raise_for_status().json()["replica"]
    return found


def state(client: httpx.Client, task_id: str) -> str:
    found: str = client.get(f"{TES}/tasks/{task_id}").raise_for_status().json()["state"]
    return found


def until_state(client: httpx.Client, task_id: str, wanted: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = state(client, task_id)
        if now in wanted:
            return now
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} is {now}, not {wanted}, after {timeout:.0f} s")


def until_ran(runs: Path, task_id: str, timeout: float) -> None:
    """Wait until the task's command wrote its line to runs.log."""
    deadline = time.monotonic() + timeout
    log = runs / "runs.log"
    while time.monotonic() < deadline:
        if log.exists() and any(ln.split()[:1] == [task_id] for ln in log.read_text().splitlines()):
            return
        time.sleep(0.1)
    raise AssertionError(f"task {task_id}'s command did not run within {timeout:.0f} s")


def wait_final(client: httpx.Client, task_id: str, timeout: float) -> str:
    """The task's final state, long-polling /wait (through nginx: any replica answers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = max(1.0, deadline - time.monotonic())
        r = client.get(f"/api/v1/tasks/{task_id}/wait", params={"timeout": min(left, 20)})
        body = r.raise_for_status().json()
        if body["final"]:
            found: str = body["state"]
            return found
    raise AssertionError(f"task {task_id} is not final after {timeout:.0f} s")


def test_three_replicas_behind_nginx_lose_no_task_when_one_is_killed(
    tmp_path: Path,
    postgres: Any,
    busybox: str,
    runs: Path,
) -> None:
    url = postgres.fresh()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLSHIP_")}
    env.update({
        "TOOLSHIP_HOME": str(tmp_path / "home"),
        "TOOLSHIP_DATABASE__URL": url,
        "TOOLSHIP_SERVER__HEARTBEAT_S": "0.5",
        "TOOLSHIP_SERVER__ADOPT_AFTER_S": "3",
        "TOOLSHIP_LOCAL__SHARED_DIRS": f'["{runs}"]',
    })  # fmt: skip
    replicas = [Replica(name, env, tmp_path) for name in ("r1", "r2", "r3")]
    nginx = Nginx(tmp_path / "nginx", [r.url for r in replicas])
    ids: list[str] = []
    doomed = ""
    try:
        start_all(replicas)
        nginx.start()
        with httpx.Client(base_url=nginx.url, timeout=30) as lb:
            # A cancel sent to a replica that does not run the task.
            doomed = create(lb, busybox, runs, "doomed", seconds=300)
            until_state(lb, doomed, {"RUNNING"}, 60)
            # RUNNING is written before the container starts: cancel once its command ran.
            until_ran(runs, doomed, 60)
            owner = replica_of(lb, doomed)
            stranger = next(r for r in replicas if r.name != owner)
            with httpx.Client(base_url=stranger.url, timeout=30) as c:
                c.post(f"{TES}/tasks/{doomed}:cancel").raise_for_status()
            assert wait_final(lb, doomed, 60) == "CANCELED"

            ids = [create(lb, busybox, runs, f"t{i}") for i in range(TASKS)]
            names = {t: f"t{i}" for i, t in enumerate(ids)}
            where = {t: replica_of(lb, t) for t in ids}
            assert set(where.values()) == {"r1", "r2", "r3"}, where  # nginx spread them
            # A task that runs after one on another replica, created on a third.
            parent = ids[0]
            others = [r for r in replicas if r.name != where[parent]]
            with httpx.Client(base_url=others[0].url, timeout=30) as elsewhere:
                child = create(elsewhere, busybox, runs, "child", seconds=0,
                               resources={"backend_parameters": {"after": parent}})  # fmt: skip
            ids.append(child)

            # kill -9 the replica that runs the most tasks, once one of them runs.
            counts = Counter(where.values())
            victim = next(r for r in replicas if r.name == counts.most_common(1)[0][0])
            held = [t for t in ids if where.get(t) == victim.name]
            until_state(lb, held[0], {"RUNNING"}, 60)
            victim.kill()
            killed = time.monotonic()
            ends = {t: wait_final(lb, t, 90) for t in ids}
            recovered = time.monotonic() - killed
            print(
                f"\n{len(held)} tasks of {victim.name} adopted; every task final "
                f"{recovered:.1f} s after the kill (adopt_after_s = 3)"
            )
            assert ends == dict.fromkeys(ids, "COMPLETE"), ends
            adopted = {t: replica_of(lb, t) for t in held}
            assert victim.name not in adopted.values(), adopted

            # A task's log, read through a replica that did not run it (one shared home).
            reader = next(r for r in replicas if r.name not in (victim.name, adopted[held[0]]))
            log = httpx.get(f"{reader.url}/api/v1/tasks/{held[0]}/logs", timeout=30)
            assert log.raise_for_status().text == f"ran {names[held[0]]}\n"

            # The killed replica comes back under its name and runs tasks again.
            victim.start()
            with httpx.Client(base_url=victim.url, timeout=30) as back:
                again = create(back, busybox, runs, "again", seconds=0)
                assert wait_final(back, again, 60) == "COMPLETE"
                assert replica_of(back, again) == victim.name
            ids.append(again)

        lines = (runs / "runs.log").read_text().splitlines()
        ran = Counter(line.split()[0] for line in lines)
        assert ran == dict.fromkeys([*ids, doomed], 1), ran  # each ran once, none twice
        assert all(line.split()[1] == "1" for line in lines), lines

        # A second server under a live replica's name is refused, and says what to do.
        twin = Replica(replicas[1].name, env, tmp_path / "twin")
        (tmp_path / "twin").mkdir()
        assert twin.launch().wait(60) != 0
        assert "is held by a running server" in twin.log.read_text()
    finally:
        nginx.stop()
        for r in replicas:
            r.stop()
        postgres.drop(url)
    assert [c for t in [*ids, doomed] for c in leftover_containers(t)] == []
