"""Sweeps and maps of a service through the SDK and `toolship sweep|map --service`, against
the real app in process (the fake backend, the in-memory images of toolship.catalog.fake),
with local paths, as a user types them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.api.conftest import TOKEN, Server, get
from toolship import Client, InvalidRequest
from toolship.cli.batches import map_, sweep
from toolship.cli.context import Ctx

WORDFREQ = {
    "toolship.service.name": "wordfreq",
    "toolship.service.version": "1.0",
    "toolship.service.input.text.path": "/data/text.txt",
    "toolship.service.param.top.type": "int",
    "toolship.service.param.top.min": "1",
    "toolship.service.param.top.max": "100",
    "toolship.service.param.top.default": "10",
    "toolship.service.output.counts.path": "/data/out/counts.csv",
    "toolship.service.command": '["echo", "{top}", "{text}"]',
}

CLONE = {  # GEF's services/clone/Dockerfile, with two inputs
    "eudat.gef.service.name": "Clone",
    "eudat.gef.service.version": "0.1",
    "eudat.gef.service.input.1.name": "Input Directory",
    "eudat.gef.service.input.1.path": "/data/input1/",
    "eudat.gef.service.input.2.name": "Second Input",
    "eudat.gef.service.input.2.path": "/data/input2/",
    "eudat.gef.service.output.1.name": "Output Directory",
    "eudat.gef.service.output.1.path": "/data/output1/",
}


@contextmanager
def sdk(server: Server) -> Iterator[Client]:
    server.images.add("localhost/wordfreq:1.0", WORDFREQ)
    server.images.add("localhost/clone:latest", CLONE, cmd=["true"])
    with server.run() as api:  # the SDK on the same in-process transport as the test's client
        client = Client("http://toolship.test", TOKEN, transport=api._transport)
        client.register_service("localhost/wordfreq:1.0")
        client.register_service("localhost/clone:latest")
        yield client


def cli(client: Client, command: Any, *args: str) -> Result:
    ctx = Ctx(server=None, token=None, _client=client)
    return CliRunner().invoke(command, list(args), obj=ctx, catch_exceptions=False)


def members(client: Client, task_ids: Iterable[str | None]) -> list[dict[str, Any]]:
    return [get(client.http, t or "") for t in task_ids]


def test_the_sdk_sweeps_a_service_over_local_files(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "books").mkdir()
    for book in ("a", "b"):
        (tmp_path / "books" / f"{book}.txt").write_text(book)
    monkeypatch.chdir(tmp_path)
    with sdk(server) as client:
        batch = client.sweep_service(
            "wordfreq",
            {"book": ["a", "b"], "top": [5, 50]},
            in_ports={"text": "books/{book}.txt"},
            out_ports={"counts": "out/{book}-{top}.csv"},
            name="count-{book}-{top}",
        )
        assert batch.wait(timeout=30).state == "COMPLETE"
        sent = members(client, batch.task_ids)
        assert [m["name"] for m in sent] == ["count-a-5", "count-a-50", "count-b-5", "count-b-50"]
        # top is swept and is wordfreq's parameter: each member runs with its row's value.
        assert [m["executors"][0]["command"][1] for m in sent] == ["5", "50", "5", "50"]
        last = sent[-1]
        assert last["inputs"] == [
            {"path": "/data/text.txt", "url": f"file://{tmp_path}/books/b.txt", "type": "FILE"}
        ]
        assert last["outputs"][0]["url"] == f"file://{tmp_path}/out/b-50.csv"
        assert last["tags"]["toolship.service"] == "wordfreq@1.0"
        assert last["executors"][0]["image"].startswith("localhost/wordfreq@sha256:")
        assert last["executors"][0]["env"]["TOOLSHIP_ARRAY_INDEX"] == "3"

        # Every member's value is checked before anything runs: one bad row refuses the batch.
        before = len(client.batches())
        with pytest.raises(InvalidRequest, match=r"params\[1\]: .*'top'"):
            client.sweep_service(
                "wordfreq", [{"top": 5}, {"top": 500}], in_ports=["text=x"], out_ports=["counts=y"]
            )
        assert len(client.batches()) == before


def test_the_cli_maps_a_gef_service_over_local_objects(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("x.txt", "y.txt"):
        (raw / name).write_text(name)
    (tmp_path / "common").mkdir()
    monkeypatch.chdir(tmp_path)
    with sdk(server) as client:
        where = ["--over", f"file://{raw}/*.txt", "--to", f"file://{tmp_path}/out/"]
        ran = cli(client, map_, *where, "--service", "Clone", "--port", "Input Directory",
                  "--in", "Second Input=common", "--name", "clone-{item}")  # fmt: skip
        assert ran.exit_code == 0, ran.output
        assert ran.stdout.startswith("batch ") and "COMPLETE: COMPLETE 2" in ran.stdout
        assert "2 tasks" in ran.stderr
        batch_id = ran.stdout.split()[1]
        first = members(client, [t.id for t in client.tasks(batch=batch_id)])[-1]  # newest first
        assert first["name"] == "clone-x"
        assert {(i["path"], i["url"], i["type"]) for i in first["inputs"]} == {
            ("/data/input2", f"file://{tmp_path}/common", "DIRECTORY"),  # a local folder
            ("/data/input1/x.txt", f"file://{raw}/x.txt", "FILE"),  # the object, into the port
        }
        assert [(o["path"], o["url"]) for o in first["outputs"]] == [
            ("/data/output1", f"file://{tmp_path}/out/map/x")
        ]
        assert first["tags"]["toolship.service"] == "Clone@0.1"

        # Without --port and with both folders free, the server says which ports there are.
        with pytest.raises(InvalidRequest, match=r"name one with service\.port"):
            cli(client, map_, *where, "--service", "Clone", "-d")


def test_the_cli_sweeps_a_service_with_set_values_and_placeholders(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "book.txt").write_text("a b a")
    monkeypatch.chdir(tmp_path)
    with sdk(server) as client:
        ran = cli(client, sweep, "--service", "wordfreq@1.0", "--param", "n=1,2",
                  "--in", "text=book.txt", "--set", "top={n}0", "--out", "counts=c{n}.csv",
                  "--cpu", "2", "-d")  # fmt: skip
        assert ran.exit_code == 0, ran.output
        batch = client.batch(ran.stdout.strip())
        assert batch.wait(timeout=30).state == "COMPLETE"
        sent = sorted(
            members(client, [t.id for t in batch.tasks()]),
            key=lambda m: m["executors"][0]["env"]["TOOLSHIP_ARRAY_INDEX"],
        )
        assert [m["executors"][0]["command"] for m in sent] == [
            ["echo", "10", "/data/text.txt"], ["echo", "20", "/data/text.txt"],
        ]  # fmt: skip
        assert [m["outputs"][0]["url"] for m in sent] == [
            f"file://{tmp_path}/c1.csv", f"file://{tmp_path}/c2.csv",
        ]  # fmt: skip
        assert {m["resources"]["cpu_cores"] for m in sent} == {2}

        with pytest.raises(InvalidRequest, match=r"params\[1\]: .*'top'"):
            cli(client, sweep, "--service", "wordfreq", "--param", "n=1,20",
                "--in", "text=book.txt", "--set", "top={n}0", "--out", "counts=c.csv")  # fmt: skip
