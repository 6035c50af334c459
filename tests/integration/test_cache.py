"""The result cache with real podman: a second identical `run --cache` completes from the
first (both times printed), and one changed input byte, one env var or a moved image
tag each run again."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolship import Client, TaskState
from toolship.supply.cache import CACHED_FROM

PROBE = "localhost/toolship-cache-probe:latest"


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, server.token, timeout=120) as c:
        yield c


@pytest.fixture
def probe(busybox: str, tmp_path: Path) -> Iterator[str]:
    """A tag of the test's own, first on busybox; the test moves it."""
    subprocess.run(["podman", "tag", busybox, PROBE], check=True)
    yield PROBE
    subprocess.run(["podman", "rmi", "--force", PROBE], check=False, capture_output=True)


def _move(tag: str, base: str, folder: Path) -> None:
    """Point ``tag`` at a new image built on ``base`` (another manifest digest)."""
    (folder / "Containerfile").write_text(f"FROM {base}\nLABEL moved=yes\n")
    subprocess.run(
        ["podman", "build", "--pull=never", "-q", "-t", tag, str(folder)],
        check=True, capture_output=True,
    )  # fmt: skip


def _run(client: Client, image: str, data: Path, out: Path, **env: str) -> tuple[str, float]:
    began = time.monotonic()
    task = client.run(
        image, ["sh", "-c", "mkdir -p out; sleep 1; md5sum data.txt > out/sum; env > out/env"],
        inputs={"data.txt": str(data)}, outputs={"out/": f"{out}/"},
        env=[f"{k}={v}" for k, v in env.items()], cache=True,
    )  # fmt: skip
    took = time.monotonic() - began
    assert task.state is TaskState.COMPLETE, task.info().logs[-1].system_logs
    return task.id, took


def _source(client: Client, task_id: str) -> str | None:
    metadata = client.get(task_id, "FULL").logs[-1].metadata or {}  # type: ignore[index]
    return metadata.get(CACHED_FROM)


def _stored(client: Client, n: int) -> None:
    deadline = time.monotonic() + 60
    while len(client.cache_entries()) < n:
        assert time.monotonic() < deadline, f"{n} cache keys not stored within 60 s"
        time.sleep(0.05)


def test_a_second_identical_run_completes_from_the_cache_and_each_change_misses(
    client: Client, probe: str, tmp_path: Path
) -> None:
    data = tmp_path / "data.txt"
    data.write_bytes(b"one two three\n")
    first, ran = _run(client, probe, data, tmp_path / "a")
    _stored(client, 1)
    second, answered = _run(client, probe, data, tmp_path / "b")
    print(f"\nresult cache: run {ran:.2f} s, answered from the cache {answered:.2f} s")
    assert _source(client, first) is None and _source(client, second) == first
    assert (tmp_path / "b" / "sum").read_bytes() == (tmp_path / "a" / "sum").read_bytes()
    assert client.get(second, "FULL").logs[-1].logs == []  # type: ignore[index]

    env, _ = _run(client, probe, data, tmp_path / "env", EXTRA="1")
    assert _source(client, env) is None
    data.write_bytes(b"one two threE\n")
    byte, _ = _run(client, probe, data, tmp_path / "byte")
    assert _source(client, byte) is None
    data.write_bytes(b"one two three\n")
    _move(probe, "localhost/toolship-busybox", tmp_path)
    moved, _ = _run(client, probe, data, tmp_path / "moved")
    assert _source(client, moved) is None
    assert (tmp_path / "moved" / "sum").read_bytes() == (tmp_path / "a" / "sum").read_bytes()
