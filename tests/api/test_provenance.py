"""The provenance record and the Process Run Crates of stored tasks and batches.

The tasks are stored as a finished attempt records them (images by digest, the sha256
of every staged input and delivered output): the real run is tested in
tests/integration/test_provenance.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.api.conftest import BATCHES, TOKEN, Server
from tests.crates import required, validate
from toolship.cli.context import Ctx
from toolship.cli.provenance import provenance
from toolship.client import Client
from toolship.db import BatchRow, Store, TaskRow
from toolship.db.sboms import SbomStore
from toolship.db.sealing import SEALER, Sealer
from toolship.errors import InvalidRequest
from toolship.models import ExecutorLog, OutputFileLog, TaskLog
from toolship.states import TaskState
from toolship.supply.images import ImageUse, image_metadata
from toolship.supply.record import Provenance
from toolship.supply.sboms import StoredSbom

DIGEST = "sha256:" + "d" * 64
IMAGE_ID = "sha256:" + "e" * 64
IMAGE = "localhost/toolship-busybox:latest"
SBOM = json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


IN_S3, IN_FILE, OUT = b"from s3\n", b"from a file\n", b"result\n"


def stored(task_id: str, *, batch_id: str | None = None, exit_code: int = 0) -> TaskRow:
    """A task as its finished attempt leaves it in the store."""
    spec: dict[str, Any] = {
        "name": f"count-{task_id}",
        "executors": [
            {
                "image": IMAGE,
                "command": ["sh", "-c", "cat /in/a /in/b > /out/c"],
                "workdir": "/in",
                "env": {"LANG": "C"},
            }
        ],
        "inputs": [
            {"url": "s3://bucket/a.txt", "path": "/in/a"},
            {"url": "file:///data/b.txt", "path": "/in/b"},
            {"content": "x=1\n", "path": "/in/params"},
            {"url": "s3://bucket/ref/", "path": "/in/ref", "type": "DIRECTORY"},
        ],
        "outputs": [{"url": f"s3://bucket/out/{task_id}.txt", "path": "/out/c"}],
    }
    meta = {
        **image_metadata(ImageUse(0, IMAGE, DIGEST, IMAGE_ID)),
        "sha256:/in/a": sha(IN_S3),
        "sha256:/in/b": sha(IN_FILE),
        "sha256:/in/params": sha(b"x=1\n"),
        "sha256:/in/ref/x.fa": sha(b">x\n"),
        "sha256:/out/c": sha(OUT),
    }
    log = TaskLog(
        logs=[
            ExecutorLog(
                start_time="2026-11-28T10:00:01.123456Z",
                end_time="2026-11-28T10:00:02Z",
                exit_code=exit_code,
            )
        ],
        metadata=meta,
        start_time="2026-11-28T10:00:00Z",
        end_time="2026-11-28T10:00:03Z",
        outputs=[
            OutputFileLog(url=f"s3://bucket/out/{task_id}.txt", path="/out/c", size_bytes="7")
        ],
    )
    return TaskRow(
        seq=0,
        id=task_id,
        state=TaskState.COMPLETE if exit_code == 0 else TaskState.EXECUTOR_ERROR,
        name=spec["name"],
        creation_time="2026-11-28T09:59:59Z",
        priority=0,
        cpus=1,
        memory_gb=0.0,
        gpus=0,
        spec=spec,
        logs=[log],
        batch_id=batch_id,
    )


@pytest.fixture
def store(server: Server, api: httpx.Client) -> Iterator[Store]:
    """The app's database, opened beside the running app."""
    home = server.settings().home
    opened = Store.open(server.settings().database_url, sealer=Sealer.from_file(home / SEALER))
    try:
        yield opened
    finally:
        opened.close()


def crate_of(body: bytes, into: Path) -> dict[str, dict[str, Any]]:
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        z.extractall(into)
    doc = json.loads((into / "ro-crate-metadata.json").read_text())
    return {e["@id"]: e for e in doc["@graph"]}


def of_type(graph: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in graph.values() if kind in (e["@type"] if isinstance(e["@type"], list)
                                                  else [e["@type"]])]  # fmt: skip


def test_the_record_says_what_ran_on_which_bytes(api: httpx.Client, store: Store) -> None:
    store.insert_tasks([stored("t1")])
    r = api.get("/api/v1/tasks/t1/provenance")
    assert r.status_code == 200, r.text
    record = Provenance.model_validate(r.json())
    (attempt,) = record.attempts
    (ex,) = attempt.executors
    assert (ex.image, ex.digest, ex.image_id) == (IMAGE, DIGEST, IMAGE_ID)
    assert ex.command == ["sh", "-c", "cat /in/a /in/b > /out/c"]
    assert (ex.workdir, ex.env, ex.exit_code) == ("/in", {"LANG": "C"}, 0)
    assert ex.sbom is None  # none made
    by_path = {f.path: f for f in attempt.inputs}
    assert by_path["/in/a"].sha256 == sha(IN_S3)
    assert by_path["/in/b"].sha256 == sha(IN_FILE)
    assert by_path["/in/params"].content == "x=1\n"
    (part,) = by_path["/in/ref"].files
    assert (part.url, part.sha256) == ("s3://bucket/ref/x.fa", sha(b">x\n"))
    (out,) = attempt.outputs
    assert (out.url, out.size, out.sha256) == ("s3://bucket/out/t1.txt", 7, sha(OUT))


def test_a_task_crate_passes_the_process_run_crate_profile(
    api: httpx.Client, store: Store, tmp_path: Path
) -> None:
    store.insert_tasks([stored("t1")])
    SbomStore(store.engine).save(
        StoredSbom(DIGEST, IMAGE, IMAGE_ID, "2026-11-28T10:00:00Z", "syft 1", cyclonedx=SBOM)
    )
    r = api.get("/api/v1/tasks/t1/crate")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    graph = crate_of(r.content, tmp_path / "crate")
    issues = validate(tmp_path / "crate", tmp_path / "http-cache")
    assert required(issues) == [], issues
    # of the profile's SHOULDs, only those toolship cannot know are left
    assert not [
        i
        for i in issues
        if "actionStatus" in i.message
        or ("Action SHOULD" in i.message and "agent" not in i.message)
    ], issues
    (action,) = of_type(graph, "CreateAction")
    assert action["description"] == "sh -c 'cat /in/a /in/b > /out/c' (in /in)"
    assert action["actionStatus"] == "http://schema.org/CompletedActionStatus"
    assert action["startTime"] == "2026-11-28T10:00:01.123+00:00"
    image = graph[action["containerImage"]["@id"]]
    assert (image["registry"], image["name"], image["tag"]) == (
        "localhost", "toolship-busybox", "latest"
    )  # fmt: skip
    assert image["sha256"] == DIGEST.removeprefix("sha256:")
    assert graph[action["instrument"]["@id"]]["@type"] == "SoftwareApplication"
    sbom = graph[image["subjectOf"]["@id"]]
    assert (tmp_path / "crate" / sbom["@id"]).read_text() == SBOM
    assert graph[action["environment"]["@id"]] | {"@id": ""} == {
        "@id": "", "@type": "PropertyValue", "name": "LANG", "value": "C"
    }  # fmt: skip
    used = {o["@id"] for o in action["object"]}
    assert graph["s3://bucket/a.txt"]["sha256"] == sha(IN_S3)
    assert graph["file:///data/b.txt"]["sha256"] == sha(IN_FILE)
    inline = graph["content/t1/in/params"]
    assert (tmp_path / "crate" / "content/t1/in/params").read_text() == "x=1\n"
    assert inline["sha256"] == sha(b"x=1\n")
    assert used == {"s3://bucket/a.txt", "file:///data/b.txt", inline["@id"], "s3://bucket/ref/"}
    assert graph["s3://bucket/ref/x.fa"]["sha256"] == sha(b">x\n")
    result = graph[action["result"]["@id"]]
    assert (result["@id"], result["sha256"], result["contentSize"]) == (
        "s3://bucket/out/t1.txt", sha(OUT), "7"
    )  # fmt: skip


def test_a_batch_crate_holds_every_member(api: httpx.Client, store: Store, tmp_path: Path) -> None:
    batch = BatchRow(
        id="b1", name="counts", kind="tasks", creation_time="2026-11-28T09:59Z", size=2
    )
    store.insert_tasks([stored("m1", batch_id="b1"), stored("m2", batch_id="b1", exit_code=3)],
                       batch)  # fmt: skip
    r = api.get(f"{BATCHES}/b1/crate")
    assert r.status_code == 200, r.text
    graph = crate_of(r.content, tmp_path / "crate")
    assert required(validate(tmp_path / "crate", tmp_path / "http-cache")) == []
    actions = {a["identifier"]: a for a in of_type(graph, "CreateAction")}
    assert set(actions) == {"m1/1/0", "m2/1/0"}
    assert actions["m2/1/0"]["actionStatus"] == "http://schema.org/FailedActionStatus"
    assert actions["m2/1/0"]["error"] == "exit code 3"
    assert len(of_type(graph, "ContainerImage")) == 1  # the same image, once
    assert {m["@id"] for m in graph["./"]["mentions"]} == {a["@id"] for a in actions.values()}


def test_unknown_tasks_and_batches_are_named(api: httpx.Client) -> None:
    for path in ("/api/v1/tasks/nope/provenance", "/api/v1/tasks/nope/crate",
                 f"{BATCHES}/nope/crate"):  # fmt: skip
        r = api.get(path)
        assert r.status_code == 404, r.text
        assert "nope" in r.json()["detail"]


def test_the_cli_writes_crates_and_prints_the_record(
    api: httpx.Client, store: Store, tmp_path: Path
) -> None:
    batch = BatchRow(
        id="b1", name="counts", kind="tasks", creation_time="2026-11-28T09:59Z", size=1
    )
    store.insert_tasks([stored("m1", batch_id="b1")], batch)
    client = Client("http://toolship.test", TOKEN, transport=api._transport)
    ctx = Ctx(server=None, token=None, _client=client)

    def cli(*args: str) -> Result:
        return CliRunner().invoke(provenance, list(args), obj=ctx, catch_exceptions=False)

    license = "https://spdx.org/licenses/CC-BY-4.0"
    zipped = tmp_path / "batch.zip"
    done = cli("b1", "--batch", "--crate", str(zipped), "--license", license)
    assert done.exit_code == 0, done.output
    graph = crate_of(zipped.read_bytes(), tmp_path / "crate")
    assert graph["./"]["license"] == {"@id": license}
    assert graph[license]["@type"] == "CreativeWork"
    record = Provenance.model_validate_json(cli("m1", "--json").stdout)
    assert record.attempts[0].outputs[0].sha256 == sha(OUT)
    shown = cli("m1").stdout
    assert DIGEST in shown and sha(IN_S3) in shown and "none stored" in shown
    with pytest.raises(InvalidRequest, match="add --crate"):
        cli("b1", "--batch")
    with pytest.raises(InvalidRequest, match="not empty"):
        cli("m1", "--crate", str(tmp_path / "crate"))
