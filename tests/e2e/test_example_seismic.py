"""examples/seismic as its README runs it (issue 20, example 4): the seed's band-pass demo on a
bucket folder with `toolship run --sync`, and an index over the SEG-Y files of a prefix built
by `toolship map` with segyio and reduced into one SQLite file.

The bucket is a moto S3 server on loopback; the CLI starts the embedded server as a user's
would.  The band-passed traces are checked against the example's own filter run here, the
index against what segyio reads from the same objects here.
"""

from __future__ import annotations

import importlib.util
import io
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import segyio  # type: ignore[import-untyped,unused-ignore]

from tests.conftest import ROOT
from tests.e2e.examples import moto_bucket, toolship
from toolship import Client, View
from toolship.embedded import stop_server

EXAMPLE = ROOT / "examples" / "seismic"
BUCKET = "lab"
PNG = b"\x89PNG\r\n\x1a\n"
SEISMIC = f"/opt/seismic.py=@{EXAMPLE / 'seismic.py'}"
SEGY_INDEX = f"/work/bin/segy_index.py=@{EXAMPLE / 'segy_index.py'}"
# The seed's EXECUTE_COMMAND, ours: make a shot gather, band-pass it, plot both.
BANDPASS = (
    "python3 /opt/seismic.py generate --out traces.npy --traces 24 --samples 500 && "
    "python3 /opt/seismic.py filter --input traces.npy --low 8 --high 40 --out filtered.npy "
    "--plot bandpass.png"
)
REFILTER = (
    "python3 /opt/seismic.py filter --input traces.npy --low 10 --high 30 --out filtered.npy "
    "--plot bandpass.png"
)
INDEX = "python3 /work/bin/segy_index.py index --out /work/out/index.json {inputs}"
MERGE = (
    "python3 /work/bin/segy_index.py merge --out /work/out/index.sqlite "
    "--plot /work/out/coverage.png /work/in/*/index.json"
)


@dataclass
class Bucket:
    """The moto S3 server's bucket (boto3) and the embedded server the CLI started (SDK)."""

    s3: Any
    client: Client


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory, busybox: str) -> Iterator[Bucket]:
    """A moto S3 server with an empty bucket, which the CLI's server and segy_index.py reach,
    and one toolship home for the module's tests (one embedded server, stopped first)."""
    tmp = tmp_path_factory.mktemp("seismic")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TOOLSHIP_HOME", str(tmp / "home"))
        env.delenv("TOOLSHIP_SERVER", raising=False)
        env.delenv("TOOLSHIP_TOKEN", raising=False)
        (tmp / "home").mkdir()
        with moto_bucket(env, tmp, BUCKET) as s3:
            try:
                with Client(timeout=120) as client:
                    yield Bucket(s3, client)
            finally:
                stop_server(tmp / "home")


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(s3: Any, key: str) -> bytes:
    body: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return body


def task_id(ran: subprocess.CompletedProcess[str]) -> str:
    """The id an attached `toolship run` prints first, `task ID`, on stderr."""
    first = ran.stderr.splitlines()[0].split()
    assert first[0] == "task", ran.stderr
    return first[1]


def batch_of(done: subprocess.CompletedProcess[str]) -> str:
    """The id from the CLI's last line, `batch ID COMPLETE: COMPLETE n`."""
    last = done.stdout.strip().splitlines()[-1].split()
    assert last[0] == "batch" and last[2] == "COMPLETE:", done.stdout
    return last[1]


def delivered(client: Client, task: str) -> list[str]:
    """The files the task uploaded, by their URL's name."""
    logs = client.get(task, View.FULL).logs
    assert logs, task
    return sorted(o.url.rsplit("/", 1)[-1] for o in logs[-1].outputs)


def test_bandpass_synced_with_a_bucket_folder(bucket: Bucket, python_image: str) -> None:
    seismic = example("seismic")
    s3, job = bucket.s3, f"s3://{BUCKET}/job/"
    # the seed's first run: the folder does not exist yet; the task's files make it
    ran = toolship(
        "run", "--name", "bandpass", "--sync", job, "--content", SEISMIC,
        python_image, "--", "sh", "-c", BANDPASS,
    )  # fmt: skip
    assert "band: 8-40 Hz" in ran.stdout and "the filter removed" in ran.stderr
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="job/")["Contents"]
    assert sorted(o["Key"] for o in listed) == [
        "job/bandpass.png", "job/filtered.npy", "job/traces.npy",
    ]  # fmt: skip
    assert delivered(bucket.client, task_id(ran)) == ["bandpass.png", "filtered.npy", "traces.npy"]
    traces = np.load(io.BytesIO(read(s3, "job/traces.npy")))
    assert traces.shape == (24, 500)
    filtered = np.load(io.BytesIO(read(s3, "job/filtered.npy")))
    np.testing.assert_allclose(filtered, seismic.bandpass(traces, 0.004, 8, 40, 2.0), atol=1e-12)
    assert read(s3, "job/bandpass.png")[:8] == PNG

    # again with another band: the folder is staged in, and only what changed goes back
    ran = toolship(
        "run", "--name", "refilter", "--sync", job, "--content", SEISMIC,
        python_image, "--", "sh", "-c", REFILTER,
    )  # fmt: skip
    assert delivered(bucket.client, task_id(ran)) == ["bandpass.png", "filtered.npy"]
    again = np.load(io.BytesIO(read(s3, "job/filtered.npy")))
    np.testing.assert_allclose(again, seismic.bandpass(traces, 0.004, 10, 30, 2.0), atol=1e-12)
    assert np.array_equal(np.load(io.BytesIO(read(s3, "job/traces.npy"))), traces)


def direct_entry(path: Path) -> dict[str, Any]:
    """What segyio reads from one file here, in the index's terms."""
    with segyio.open(str(path), "r") as f:
        data = f.trace.raw[:]
        return {
            "traces": f.tracecount,
            "samples": len(f.samples),
            "sample_interval_ms": segyio.tools.dt(f) / 1000,
            "inlines": [int(n) for n in f.ilines],
            "crosslines": [int(n) for n in f.xlines],
            "amplitude_min": float(data.min()),
            "amplitude_max": float(data.max()),
        }


def test_an_index_over_the_segy_files_of_a_prefix(
    bucket: Bucket, science: str, tmp_path: Path
) -> None:
    s3 = bucket.s3
    made = subprocess.run(
        [sys.executable, str(EXAMPLE / "segy_index.py"), "make", "--to", f"s3://{BUCKET}/segy/",
         "--files", "6", "--inlines", "6", "--crosslines", "4", "--samples", "200"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    files = {}
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix="segy/")["Contents"]:
        local = tmp_path / obj["Key"].rsplit("/", 1)[-1]
        local.write_bytes(read(s3, obj["Key"]))
        files[local.name] = direct_entry(local)
    assert len(files) == 6

    # map: 3 files per task (2 tasks), then the reduce merges their entries into one index
    mapped = toolship(
        "map", "--over", f"s3://{BUCKET}/segy/*.segy", "--chunk", "3",
        "--to", f"s3://{BUCKET}/index/", "--content", SEGY_INDEX,
        "--reduce", science, "--reduce-command", MERGE,
        science, "--", "sh", "-c", INDEX,
    )  # fmt: skip
    assert "COMPLETE 3" in mapped.stdout, mapped.stdout
    index = tmp_path / "index.sqlite"
    index.write_bytes(read(s3, "index/reduce/index.sqlite"))
    assert read(s3, "index/reduce/coverage.png")[:8] == PNG
    with sqlite3.connect(index) as db:
        db.row_factory = sqlite3.Row
        rows = {r["file"]: dict(r) for r in db.execute("SELECT * FROM files")}
        lines = db.execute("SELECT kind, number, file FROM lines").fetchall()
    db.close()
    assert rows.keys() == files.keys()
    for name, direct in files.items():
        row = rows[name]
        for key in ("traces", "samples", "sample_interval_ms", "amplitude_min", "amplitude_max"):
            assert row[key] == direct[key], (name, key)
        for kind in ("inline", "crossline"):
            numbers = direct[f"{kind}s"]
            assert (row[f"{kind}_min"], row[f"{kind}_max"]) == (min(numbers), max(numbers))
            held = sorted(n for k, n, f in lines if k == kind and f == name)
            assert held == sorted(numbers), (name, kind)

    # queried in the bucket: which files hold inline N, by the example's own query
    target = files["tile-03.segy"]["inlines"][2]
    holders = sorted(name for name, d in files.items() if target in d["inlines"])
    assert holders == ["tile-02.segy", "tile-03.segy"]
    asked = subprocess.run(
        [sys.executable, str(EXAMPLE / "segy_index.py"), "query",
         f"s3://{BUCKET}/index/reduce/index.sqlite", "--inline", str(target)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.split() == holders
    (reduce,) = bucket.client.tasks(batch=batch_of(mapped), name="reduce")
    assert reduce.id is not None
    summary = b"".join(bucket.client.logs(reduce.id)).decode()
    assert f"6 files, {sum(d['traces'] for d in files.values())} traces" in summary, summary


def test_the_readme_shows_the_commands_this_test_runs() -> None:
    """The README's commands are the ones run above (kept in step; its lines may be broken)."""
    readme = " ".join((EXAMPLE / "README.md").read_text().replace("\\\n", " ").split())
    for command in (BANDPASS, REFILTER, INDEX, MERGE):
        assert " ".join(command.split()) in readme, command
