"""The services SDK and `toolship service …` against the real app in process (the fake
backend and the in-memory images of toolship.catalog.fake): a folder built by upload with
its log shown, listed, shown, and run by name with local paths, as a user does it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.api.conftest import TOKEN, Server, get, wait
from toolship import BuildFailed, Client, InvalidRequest
from toolship.cli.context import Ctx
from toolship.cli.services import service

CLONE = """FROM localhost/toolship-busybox
LABEL "eudat.gef.service.name"="Clone" "eudat.gef.service.version"="0.2"
LABEL "eudat.gef.service.description"="Copy input to output"
LABEL "eudat.gef.service.input.1.name"="Input Directory" "eudat.gef.service.input.1.path"="/data/input1/"
LABEL "eudat.gef.service.input.2.name"="Second Input" "eudat.gef.service.input.2.path"="/data/input2/"
LABEL "eudat.gef.service.output.1.name"="Output Directory" "eudat.gef.service.output.1.path"="/data/output1/"
CMD ["true"]
"""  # noqa: E501 (GEF's labels, one port per line)

WORDFREQ = """FROM localhost/toolship-python
LABEL toolship.service.name=wordfreq toolship.service.version=1.0
LABEL toolship.service.input.text.path=/data/text.txt
LABEL toolship.service.param.top.type=int toolship.service.param.top.min=1 toolship.service.param.top.max=100 toolship.service.param.top.default=10
LABEL toolship.service.output.counts.path=/data/out/counts.csv
LABEL toolship.service.command='["echo", "{top}", "{text}"]'
"""  # noqa: E501


EXITS = """FROM localhost/toolship-busybox
LABEL toolship.service.name=exits toolship.service.param.code.type=int
LABEL toolship.service.command='["exit", "{code}"]'
"""


@contextmanager
def sdk(server: Server) -> Iterator[Client]:
    with server.run() as api:  # the SDK on the same in-process transport as the test's client
        yield Client("http://toolship.test", TOKEN, transport=api._transport)


def cli(client: Client, *args: str) -> Result:
    ctx = Ctx(server=None, token=None, _client=client)
    return CliRunner().invoke(service, list(args), obj=ctx, catch_exceptions=False)


def folder(root: Path, containerfile: str, **files: str) -> Path:
    root.mkdir()
    (root / "Containerfile").write_text(containerfile)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_build_list_show_and_run_a_gef_service_with_local_data(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = folder(tmp_path / "clone", CLONE, **{".containerignore": "*.bin\n", "big.bin": "x"})
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a")
    monkeypatch.chdir(tmp_path)
    with sdk(server) as client:
        seen: list[bytes] = []
        version = client.build_service(ctx, on_log=seen.append)
        assert (version.name, version.version, version.containerfile) == ("Clone", "0.2", True)
        assert b"STEP 1/2" in b"".join(seen)

        assert [(s.name, s.latest) for s in client.services("copy").services] == [("Clone", "0.2")]
        assert client.services("nothing like it").services == []
        usage = "toolship service run Clone@0.2 --in 'Input Directory=URL/' --in 'Second"
        assert usage in cli(client, "show", "Clone").stdout  # GEF's names have spaces

        task = client.run_service(
            "Clone",
            in_ports={"Input Directory": "data", "input2": "data/a.txt"},
            out_ports={"output1": "results"},
            name="clone-it",
        )
        assert task.wait(timeout=30) == "COMPLETE"
        stored = task.info()
        assert stored.executors[0].image == version.image  # REPO@sha256:…
        assert stored.tags == {"toolship.service": "Clone@0.2"}
        assert stored.name == "clone-it"
        staged = {(i.path, i.url, i.type) for i in stored.inputs or []}
        assert staged == {
            ("/data/input1", f"file://{data}", "DIRECTORY"),  # a local folder, sent with /
            ("/data/input2/a.txt", f"file://{data}/a.txt", "FILE"),  # a file into the folder
        }
        outputs = stored.outputs or []
        assert [(o.path, o.url) for o in outputs] == [
            ("/data/output1", f"file://{tmp_path}/results")
        ]


def test_a_failed_build_raises_with_the_failing_step(server: Server, tmp_path: Path) -> None:
    ctx = folder(tmp_path / "bad", "FROM localhost/toolship-busybox\nRUN false\n")
    with sdk(server) as client, pytest.raises(BuildFailed) as failed:
        client.build_service(ctx)
    assert 'failed at STEP 2/2 "RUN false"' in str(failed.value)
    assert 'Error: building at STEP "RUN false": exit status 1' in str(failed.value)


def test_the_cli_builds_lists_shows_and_runs(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = folder(tmp_path / "wordfreq", WORDFREQ)
    (tmp_path / "book.txt").write_text("a b a")
    monkeypatch.chdir(tmp_path)
    with sdk(server) as client:
        built = cli(client, "build", str(ctx))
        assert built.exit_code == 0
        assert "STEP 1/2" in built.stderr and "1 files" in built.stderr
        assert built.stdout.startswith("wordfreq@1.0  localhost/")
        assert "run it: toolship service run wordfreq@1.0 --in text=URL --out counts=URL" in (
            built.stdout
        )

        listed = cli(client, "ls").stdout.splitlines()
        assert listed[1].split()[:2] == ["wordfreq", "1.0"]
        assert json.loads(cli(client, "ls", "--json").stdout)["services"][0]["name"] == "wordfreq"

        shown = cli(client, "show", "wordfreq").stdout
        assert "echo {top} {text}" in shown and "default 10" in shown and "1 ≤ top ≤ 100" in shown
        one: dict[str, Any] = json.loads(cli(client, "show", "wordfreq@1.0", "--json").stdout)
        assert one["interface"]["parameters"][0]["name"] == "top"

        with pytest.raises(InvalidRequest, match="top"):
            cli(client, "run", "wordfreq", "--in", "text=book.txt", "--param", "top=1000",
                "--out", "counts=counts.csv", "-d")  # fmt: skip
        ran = cli(client, "run", "wordfreq", "--in", "text=book.txt", "--param", "top=3",
                  "--out", "counts=counts.csv", "--cpu", "2", "-d")  # fmt: skip
        task_id = ran.stdout.strip()
        assert wait(client.http, task_id) == "COMPLETE"
        stored = get(client.http, task_id)
        assert stored["executors"][0]["command"] == ["echo", "3", "/data/text.txt"]
        assert stored["resources"]["cpu_cores"] == 2

        attached = cli(client, "run", "wordfreq", "--in", "text=book.txt",
                       "--out", "counts=counts.csv")  # fmt: skip
        assert attached.exit_code == 0 and attached.stderr.startswith("task ")

        cli(client, "build", str(folder(tmp_path / "exits", EXITS)))
        attached = cli(client, "run", "exits", "--param", "code=3")
        assert attached.exit_code == 3  # the tool's, as toolship run exits
        assert "ended EXECUTOR_ERROR (exit 3)" in attached.stderr

        assert cli(client, "deprecate", "wordfreq@1.0").stdout.startswith("deprecated wordfreq@1.0")
        assert [line.split()[0] for line in cli(client, "ls").stdout.splitlines()] == [
            "NAME", "exits",
        ]  # fmt: skip
        unnamed = client.service("exits").versions[0].version  # no version label: the digest's
        cli(client, "deprecate", f"exits@{unnamed}")
        assert "no services: register one with toolship service add" in cli(client, "ls").stderr
