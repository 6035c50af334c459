"""Exact reruns without I/O but files: the rerun task built from a stored one, the
worker's input check, the comparison of outputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from toolship.db import TaskRow
from toolship.errors import Conflict, InvalidRequest, StagingError
from toolship.models import OutputFileLog, Resources, TaskLog
from toolship.options import OptionDefaults, read_options
from toolship.provenance.rerun import rerun_task, verification
from toolship.states import TaskState
from toolship.supply.images import ImageUse, image_metadata
from toolship.supply.reruns import RERUN_OF, RerunRequest
from toolship.worker import inputs
from toolship.worker.inputs import check_inputs, hash_mounted
from toolship.worker.staging import StagedFile

DIGEST = "sha256:" + "a" * 64
A, B, C = ("1" * 64, "2" * 64, "3" * 64)


def _row(
    *, meta: dict[str, str] | None = None, outputs: list[OutputFileLog] | None = None
) -> TaskRow:
    spec = {
        "name": "count",
        "executors": [{"image": "localhost/tool:1", "command": ["wc", "/in/a"], "env": {"X": "1"}}],
        "inputs": [
            {"path": "/in/a", "url": "file:///data/a"},
            {"path": "/in/d", "url": "s3://b/d/", "type": "DIRECTORY"},
        ],
        "outputs": [
            {"path": "/out/r.txt", "url": "file:///data/res/r.txt"},
            {"path": "/out/all", "url": "s3://b/res/all/", "type": "DIRECTORY"},
        ],
        "resources": {"backend_parameters": {"retries": "1", "after": "t0"}},
        "tags": {"project": "x"},
    }
    if meta is None:
        meta = {
            **image_metadata(ImageUse(0, "localhost/tool:1", DIGEST)),
            "sha256:/in/a": A,
            "sha256:/in/d/x": B,
            "sha256:/in/d/y/z": C,
            "sha256:/out/r.txt": C,
        }
    log = TaskLog(metadata=meta, outputs=outputs or [])
    return TaskRow(
        seq=1, id="orig", state=TaskState.COMPLETE, name="count", creation_time="t",
        priority=0, cpus=2, memory_gb=1.5, gpus=0, spec=spec, logs=[log],
        resolved=OptionDefaults(runtime="podman", cpus=2, memory_gb=1.5, memory_limited=True),
    )  # fmt: skip


def test_a_rerun_pins_each_image_to_its_digest_and_expects_the_input_bytes() -> None:
    task, places, checked = rerun_task(_row(), RerunRequest())
    assert task.executors[0].image == f"localhost/tool@{DIGEST}"
    assert task.executors[0].command == ["wc", "/in/a"] and task.executors[0].env == {"X": "1"}
    params = task.resources.backend_parameters  # type: ignore[union-attr]
    assert params is not None
    assert json.loads(params["inputs_sha256"]) == {"/in/a": A, "/in/d/x": B, "/in/d/y/z": C}
    assert checked == 3
    assert "after" not in params and params["retries"] == "1" and params["runtime"] == "podman"
    assert (task.resources.cpu_cores, task.resources.ram_gb) == (2, 1.5)  # type: ignore[union-attr]
    assert task.tags == {"project": "x", RERUN_OF: "orig"}
    # The original's outputs are never overwritten: a rerun-XXXXXXXX folder beside each.
    folder = places[0].url.split("/")[-2]
    assert folder.startswith("rerun-") and len(folder) == len("rerun-") + 8
    assert [p.url for p in places] == [
        f"file:///data/res/{folder}/r.txt",
        f"s3://b/res/{folder}/all/",
    ]
    assert [o.url for o in task.outputs or []] == [p.url for p in places]
    # What the worker reads back: the same expectations.
    options = read_options(task.resources, OptionDefaults(runtime="podman", cpus=1, memory_gb=0))
    assert options.inputs_sha256["/in/a"] == A


def test_outputs_go_under_a_prefix_or_where_named() -> None:
    _, places, _ = rerun_task(_row(), RerunRequest(out_prefix="file:///tmp/again/"))
    assert [p.url for p in places] == ["file:///tmp/again/r.txt", "file:///tmp/again/all/"]
    _, places, _ = rerun_task(_row(), RerunRequest(outputs={"/out/r.txt": "file:///tmp/r2"}))
    assert places[0].url == "file:///tmp/r2"
    with pytest.raises(InvalidRequest, match=r"no output at /out/nope.*/out/all, /out/r.txt"):
        rerun_task(_row(), RerunRequest(outputs={"/out/nope": "file:///tmp/x"}))
    with pytest.raises(InvalidRequest, match=r"would both go to file:///tmp/same.*--out"):
        rerun_task(
            _row(),
            RerunRequest(
                outputs={"/out/r.txt": "file:///tmp/same", "/out/all": "file:///tmp/same"}
            ),
        )


def test_what_cannot_be_rerun_exactly_is_refused_naming_why() -> None:
    meta = {"sha256:/in/a": A}  # no image recorded
    with pytest.raises(Conflict, match=r"no image digest for executor 0 .*localhost/tool:1"):
        rerun_task(_row(meta=meta), RerunRequest())
    meta = image_metadata(ImageUse(0, "localhost/tool:1", DIGEST))  # no input hash
    with pytest.raises(Conflict, match=r"no sha256 for input /in/a.*--allow-changed-inputs"):
        rerun_task(_row(meta=meta), RerunRequest())
    task, _, checked = rerun_task(_row(meta=meta), RerunRequest(allow_changed_inputs=True))
    assert checked == 0 and "inputs_sha256" not in (task.resources.backend_parameters or {})  # type: ignore[union-attr]
    running = _row()
    running.state = TaskState.RUNNING
    with pytest.raises(Conflict, match="is RUNNING: only a task that has ended"):
        rerun_task(running, RerunRequest())
    # Canceled before it started (schemathesis' stateful run: "wait for it" would not help).
    canceled = _row()
    canceled.state, canceled.logs = TaskState.CANCELED, []
    with pytest.raises(Conflict, match=r"ended CANCELED before any attempt ran.*submit the task"):
        rerun_task(canceled, RerunRequest())


def test_verification_names_identical_differing_missing_and_added_files() -> None:
    def row(task_id: str, files: dict[str, str]) -> TaskRow:
        outputs = [OutputFileLog(url=f"file:///o{p}", path=p, size_bytes="1") for p in files]
        found = _row(meta={f"sha256:{p}": h for p, h in files.items() if h}, outputs=outputs)
        found.id = task_id
        return found

    original = row("orig", {"/out/same": A, "/out/date": B, "/out/gone": C})
    again = row("new", {"/out/same": A, "/out/date": C, "/out/extra": A})
    found = verification(again, original)
    assert (found.identical, found.differing, found.missing, found.added) == (
        ["/out/same"], ["/out/date"], ["/out/gone"], ["/out/extra"]
    )  # fmt: skip
    assert not found.all_identical
    assert verification(original, original).all_identical


def test_inputs_sha256_must_be_an_object_of_paths_to_hex() -> None:
    defaults = OptionDefaults(runtime="podman", cpus=1, memory_gb=0)
    for bad in ("nope", "[1]", json.dumps({"in/a": A}), json.dumps({"/in/a": "xyz"})):
        with pytest.raises(InvalidRequest, match="inputs_sha256"):
            read_options(Resources(backend_parameters={"inputs_sha256": bad}), defaults)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_worker_stops_naming_each_input_that_is_not_the_originals(tmp_path: Path) -> None:
    mounted = tmp_path / "a.txt"
    mounted.write_bytes(b"hello\n")
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x").write_bytes(b"x")
    (folder / "link").symlink_to(mounted)  # never followed
    staged = [
        StagedFile("/in/a.txt", "file:///a.txt", 6, "", host=str(mounted)),
        StagedFile("/in/d", "file:///d", 0, "", host=str(folder)),
        StagedFile("/in/c", "s3://b/c", 1, B),
    ]
    assert {f.path: f.sha256 for f in hash_mounted(staged)} == {
        "/in/a.txt": _sha(b"hello\n"),
        "/in/d/sub/x": _sha(b"x"),
    }
    expected = {"/in/a.txt": _sha(b"hello\n"), "/in/d/sub/x": _sha(b"x"), "/in/c": B}
    assert len(check_inputs(staged, expected)) == 2
    mounted.write_bytes(b"hellO\n")
    with pytest.raises(StagingError) as caught:
        check_inputs(staged, {**expected, "/in/gone": A})
    message = str(caught.value)
    assert (
        f"/in/a.txt has sha256 {_sha(b'hellO' + bytes([10]))}, not {_sha(b'hello' + bytes([10]))}"
        in message
    )
    assert "/in/gone is missing" in message and "--allow-changed-inputs" in message
    assert "/in/d/sub/x" not in message


def test_a_mounted_input_is_read_again_only_once_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "ref.fa"
    data.write_text("ACGT\n")
    staged = [StagedFile("/in/ref.fa", f"file://{data}", 5, "", 0, str(data))]
    first = inputs.hash_mounted(staged)[0].sha256
    reads: list[Path] = []
    real = inputs.sha256_file

    def counting(path: Path) -> str:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(inputs, "sha256_file", counting)
    assert inputs.hash_mounted(staged)[0].sha256 == first and reads == []
    data.write_text("ACGA\n")  # same size: its ctime says it changed
    assert inputs.hash_mounted(staged)[0].sha256 != first and reads == [data]
