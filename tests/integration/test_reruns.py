"""Exact reruns with real podman: `toolship rerun --verify` of a deterministic task, of a
task that writes the time, and of one whose input changed by one byte since."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import toolship
from toolship import Client, TaskState
from toolship.supply.reruns import RERUN_OF


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, server.token, timeout=120) as c:
        yield c


def _original(client: Client, busybox: str, tmp_path: Path, script: str) -> tuple[str, Path]:
    data = tmp_path / "data.txt"
    data.write_bytes(b"one two three\n")
    results = tmp_path / "results"
    task = client.run(
        busybox, ["sh", "-c", script],
        inputs={"data.txt": str(data)}, outputs={"out/": f"{results}/"},
    )  # fmt: skip
    assert task.state is TaskState.COMPLETE, task.info().logs[-1].system_logs
    return task.id, data


def test_a_deterministic_task_reruns_identical_and_links_to_its_original(
    server: Any, client: Client, busybox: str, tmp_path: Path
) -> None:
    original, data = _original(client, busybox, tmp_path, "mkdir -p out; wc -c data.txt > out/n")
    meta = client.get(original, "FULL").logs[-1].metadata  # type: ignore[index]
    # The input mounted in place is hashed too: the rerun has bytes to check against.
    assert meta["sha256:/work/data.txt"] == hashlib.sha256(data.read_bytes()).hexdigest()
    ran = toolship("rerun", original, "--verify", "--json", timeout=180)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    doc = json.loads(ran.stdout)
    assert doc["state"] == "COMPLETE"
    assert doc["verification"]["identical"] == ["/work/out/n"]
    assert doc["rerun"]["inputs_checked"] == 1
    again = client.get(doc["rerun"]["id"], "FULL")
    assert again.tags == {RERUN_OF: original}
    digest = meta["toolship.image_digest.0"]
    assert again.executors[0].image == f"{busybox}@{digest}"  # type: ignore[index]
    # Beside the original's outputs, never over them.
    folder = Path(doc["rerun"]["outputs"][0]["url"].removeprefix("file://"))
    assert folder.parent.parent == tmp_path and folder.parent.name.startswith("rerun-")
    assert folder.name == "results"
    assert (folder / "n").read_text() == (tmp_path / "results" / "n").read_text()


def test_a_task_writing_the_time_reruns_with_that_file_differing(
    server: Any, client: Client, busybox: str, tmp_path: Path
) -> None:
    # busybox's date has whole seconds: the second ticks over before the rerun can start.
    script = "mkdir -p out; date +%s > out/when; cp data.txt out/same; sleep 1"
    original, _ = _original(client, busybox, tmp_path, script)
    ran = toolship("rerun", original, "--verify", timeout=180)
    assert ran.returncode == 1, ran.stderr + ran.stdout
    lines = ran.stdout.splitlines()
    assert "differing  /work/out/when" in lines and "identical  /work/out/same" in lines
    assert "1 differing, 0 missing, 0 added, 1 identical" in ran.stdout


def test_a_changed_input_byte_stops_the_rerun_before_any_executor_runs(
    server: Any, client: Client, busybox: str, tmp_path: Path
) -> None:
    original, data = _original(client, busybox, tmp_path, "mkdir -p out; cat data.txt > out/c")
    data.write_bytes(b"one two threE\n")
    info = client.rerun(original)
    assert client.wait(info.id) is TaskState.SYSTEM_ERROR
    attempt = client.get(info.id, "FULL").logs[-1]  # type: ignore[index]
    assert attempt.logs == []  # no executor ran
    said = " ".join(attempt.system_logs or [])
    assert "/work/data.txt has sha256" in said and "--allow-changed-inputs" in said
    ran = toolship("rerun", original, "--allow-changed-inputs", "--verify", timeout=180)
    assert ran.returncode == 1 and "differing  /work/out/c" in ran.stdout, ran.stderr
