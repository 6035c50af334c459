"""`toolship provenance --crate` of a real task (podman) with an S3 input (moto) and a
local file input: the crate passes roc-validator's Process Run Crate profile (offline,
see tests/crates.py) and its sha256 are those of the bytes the task read and wrote."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import toolship
from tests.crates import required, validate
from tests.integration.conftest import S3
from toolship import Client, TaskState


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, server.token, timeout=120) as c:
        yield c


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_crate_of_a_real_run_validates_with_the_bytes_hashes(
    s3: S3, server: Any, client: Client, busybox: str, tmp_path: Path
) -> None:
    bucket = s3.client()
    bucket.create_bucket(Bucket="prov")
    from_s3, from_file = b"genome from the bucket\n", b"parameters from a file\n"
    bucket.put_object(Bucket="prov", Key="in/reads.txt", Body=from_s3)
    local = tmp_path / "params.txt"
    local.write_bytes(from_file)
    results = tmp_path / "results"
    results.mkdir()
    task = client.run(
        busybox,
        [
            "sh",
            "-c",
            "mkdir -p out && cat reads.txt params.txt > out/both.txt"
            " && wc -c < reads.txt > out/n.txt",
        ],
        inputs={"reads.txt": "s3://prov/in/reads.txt", "params.txt": str(local)},
        outputs={"out/": f"{results}/"},
        env={"LC_ALL": "C"},
    )
    assert task.state is TaskState.COMPLETE, task.info().logs[-1].system_logs
    written = {p.name: p.read_bytes() for p in results.iterdir()}
    assert written["both.txt"] == from_s3 + from_file

    crate = tmp_path / "crate"
    done = toolship("provenance", task.id, "--crate", str(crate), check=True)
    assert f"task {task.id}" in done.stderr
    issues = validate(crate, tmp_path / "http-cache")
    assert required(issues) == [], issues

    graph = {
        e["@id"]: e for e in json.loads((crate / "ro-crate-metadata.json").read_text())["@graph"]
    }
    (action,) = [e for e in graph.values() if e["@type"] == "CreateAction"]
    inputs = {o["@id"] for o in action["object"]}
    assert inputs == {"s3://prov/in/reads.txt", local.as_uri()}
    assert graph["s3://prov/in/reads.txt"]["sha256"] == sha(from_s3)
    assert graph[local.as_uri()]["sha256"] == sha(from_file)
    outputs = {
        graph[o["@id"]]["name"].rpartition("/")[2]: graph[o["@id"]] for o in action["result"]
    }
    assert set(outputs) == set(written)
    for name, data in written.items():
        assert outputs[name]["sha256"] == sha(data), name
        assert outputs[name]["contentSize"] == str(len(data))
    image = graph[action["containerImage"]["@id"]]
    inspected = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Digest}} {{.Id}}", busybox],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert image["sha256"] == inspected[0].removeprefix("sha256:")
    assert (image["registry"], image["name"]) == ("localhost", "toolship-busybox")
    env = graph[action["environment"]["@id"]]
    assert (env["name"], env["value"]) == ("LC_ALL", "C")

    zipped = tmp_path / "run.crate.zip"
    toolship("provenance", task.id, "--crate", str(zipped), check=True)
    assert zipped.read_bytes()[:2] == b"PK"
    shown = toolship("provenance", task.id, check=True).stdout
    assert sha(from_s3) in shown and inspected[0] in shown
