"""Sweeps and maps of a service from the SDK and `toolship sweep|map --service` against a
scripted server (httpx's MockTransport): what they send, and the usage errors a user sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.unit.test_service_client import Server, catalog
from toolship import InvalidRequest
from toolship.cli.batches import map_, sweep
from toolship.cli.context import Ctx
from toolship.spec import build_task, task_template

BATCHES = "/api/v1/batches"


def batches() -> Server:
    """The catalog of test_service_client (wc: 1.1 live, 1.2 deprecated) taking batches."""
    server = catalog()
    server.routes[("POST", BATCHES)] = lambda _: {"id": "b1", "task_ids": ["t1", "t2"]}
    return server


def invoke(server: Server, command: Any, *args: str) -> Result:
    ctx = Ctx(server=None, token=None, _client=server.client())
    return CliRunner().invoke(command, list(args), obj=ctx, catch_exceptions=False)


def test_a_sweep_of_a_service_sends_the_run_once_with_its_placeholders_and_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server = batches()
    batch = server.client().sweep_service(
        "wc",
        {"min": [1, 2], "book": ["a", "b"]},
        in_ports={"text": "books/{book}.txt", "lang": "{book}"},
        parameters={"mode": "fast"},
        out_ports=["counts=out/{book}-{min}/"],
        name="count-{book}",
        cpu=2,
        params={"partition": "short"},  # backend parameters, as for run_service
        max_parallel=2,
        batch_name="counts",
    )
    assert (batch.id, batch.task_ids) == ("b1", ["t1", "t2"])
    assert server.posted(BATCHES) == {
        "service": {
            "name": "wc",
            "version": "1.1",  # the latest live one, pinned for every member
            "inputs": {
                "text": f"file://{tmp_path}/books/{{book}}.txt",  # a local path, made a URL
                "lang": "{book}",  # a string port: the value itself
            },
            # min is swept and a parameter of wc: it takes the row's value; book is not one.
            "parameters": {"mode": "fast", "min": "{min}"},
            "outputs": {"counts": f"file://{tmp_path}/out/{{book}}-{{min}}/"},
            "task": task_template(name="count-{book}", cpu=2, params={"partition": "short"}),
        },
        "params": [
            {"min": "1", "book": "a"}, {"min": "1", "book": "b"},
            {"min": "2", "book": "a"}, {"min": "2", "book": "b"},
        ],
        "max_parallel": 2,
        "name": "counts",
    }  # fmt: skip


def test_a_value_given_for_a_swept_parameter_is_kept() -> None:
    server = batches()
    server.client().sweep_service(
        "wc", [{"min": 1}, {"min": 2}], version="1.1", parameters=["min=3", "mode={min}"]
    )
    sent = server.posted(BATCHES)
    assert sent["service"]["parameters"] == {"min": "3", "mode": "{min}"}
    assert sent["params"] == [{"min": 1}, {"min": 2}]
    assert "task" not in sent["service"]  # nothing to add to the service's own task
    assert server.sent[0].url.path == "/api/v1/services/wc/versions/1.1"


def test_a_map_of_a_service_names_its_port_and_keeps_the_reduce() -> None:
    server = batches()
    server.client().map_service(
        "wc",
        over="s3://b/books/*.txt",
        to="s3://b/counts/",
        chunk=3,
        port="books",
        in_ports={"text": "s3://b/main.txt"},
        parameters={"mode": "exact"},
        reduce=("img", ["cat"]),
        priority=4,
    )
    assert server.posted(BATCHES) == {
        "service": {
            "name": "wc",
            "version": "1.1",
            "port": "books",
            "inputs": {"text": "s3://b/main.txt"},
            "parameters": {"mode": "exact"},
            "outputs": {},
        },
        "map": {"over": "s3://b/books/*.txt", "to": "s3://b/counts/", "chunk": 3},
        "reduce": build_task("img", ["cat"]),
        "priority": 4,
    }


def test_the_sdk_refuses_unknown_arguments_and_bad_pairs() -> None:
    client = batches().client()
    with pytest.raises(TypeError, match="'cpus'"):
        client.sweep_service("wc", [{"n": 1}], cpus=2)  # type: ignore[call-arg]
    with pytest.raises(InvalidRequest, match=r"--in 'text' must look like PORT=URL"):
        client.map_service("wc", over="s3://b/*", to="s3://b/o/", in_ports=["text"])


def test_sweep_service_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    server = batches()
    r = invoke(server, sweep, "--service", "wc@1.1", "--param", "min=1,2",
               "--in", "text=a.txt", "--set", "mode=fast", "--out", "counts=out/{min}/",
               "--cpu", "2", "-b", "qos=long", "--max-parallel", "1", "-d")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.output == "b1\n"
    sent = server.posted(BATCHES)
    assert sent["service"] == {
        "name": "wc",
        "version": "1.1",
        "inputs": {"text": f"file://{tmp_path}/a.txt"},
        "parameters": {"mode": "fast", "min": "{min}"},
        "outputs": {"counts": f"file://{tmp_path}/out/{{min}}/"},
        # -w was not given: no workdir, so the service's own applies.
        "task": task_template(cpu=2, params=["qos=long"]),
    }
    assert sent["params"] == [{"min": "1"}, {"min": "2"}]
    assert sent["max_parallel"] == 1
    invoke(server, sweep, "--service", "wc", "--param", "min=1", "-w", "/data", "-d")
    assert server.posted(BATCHES)["service"]["task"] == {"executors": [{"workdir": "/data"}]}


def test_map_service_on_the_command_line() -> None:
    server = batches()
    r = invoke(server, map_, "--over", "s3://b/*.txt", "--to", "s3://b/o/", "--service", "wc",
               "--port", "books", "--set", "mode={item}", "--reduce", "img",
               "--reduce-command", "cat /work/in/*/*", "--chunk", "2", "-d")  # fmt: skip
    assert r.exit_code == 0, r.output
    sent = server.posted(BATCHES)
    assert sent["service"] == {
        "name": "wc", "version": "1.1", "port": "books", "inputs": {},
        "parameters": {"mode": "{item}"}, "outputs": {},
    }  # fmt: skip
    assert sent["map"] == {"over": "s3://b/*.txt", "to": "s3://b/o/", "chunk": 2}
    assert sent["reduce"] == build_task("img", ["sh", "-c", "cat /work/in/*/*"], name="reduce")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--service", "wc", "img", "--", "x"], "leave IMAGE and COMMAND out (got 'img -- x')"),
        ([], "give IMAGE -- COMMAND, or --service NAME[@VERSION]"),
        (["--in", "text=a", "--set", "m=1", "img", "x"], "--in, --set: for a service's ports"),
        (["--set", "mode", "--service", "wc"], "'mode' must look like NAME=VALUE"),
        (["--service", "wc@"], "give a version after @"),
        (["img"], "give the command to run after the image"),
    ],
)
def test_sweep_usage_errors_say_what_to_give(args: list[str], message: str) -> None:
    server = batches()
    r = invoke(server, sweep, "--param", "n=1", *args)
    assert r.exit_code == 2 and message in r.output, r.output
    assert not [s for s in server.sent if s.url.path == BATCHES]


def test_map_usage_errors_say_what_to_give() -> None:
    server = batches()
    where = ["--over", "s3://b/*", "--to", "s3://b/o/"]
    r = invoke(server, map_, *where, "--port", "books", "img", "--", "x")
    assert r.exit_code == 2 and "--port: for a service's ports" in r.output, r.output
    r = invoke(server, map_, *where, "--service", "wc", "img")
    assert r.exit_code == 2 and "leave IMAGE and COMMAND out (got 'img')" in r.output
    assert server.sent == []


def test_template_sweeps_and_maps_still_send_a_template() -> None:
    server = batches()
    r = invoke(server, sweep, "--param", "n=1,2", "-d", "img", "--", "echo", "{n}")
    assert r.exit_code == 0, r.output
    assert server.posted(BATCHES)["template"] == build_task("img", ["echo", "{n}"])
    r = invoke(server, map_, "--over", "s3://b/*", "--to", "s3://b/o/", "-d", "img", "wc")
    assert r.exit_code == 0, r.output
    assert server.posted(BATCHES)["template"] == build_task("img", ["wc"])
    assert "service" not in server.posted(BATCHES)


def test_a_maps_reduce_runs_in_its_workdir_with_its_content_files() -> None:
    """A map and its reduce are often two modes of one script: --content reaches both."""
    server = batches()
    r = invoke(server, map_, "--over", "s3://b/*", "--to", "s3://b/o/", "-d",
               "--content", "bin/tool.py=print(1)", "-w", "/data",
               "--reduce", "img", "--reduce-command", "python3 bin/tool.py merge",
               "img", "python3", "bin/tool.py", "index")  # fmt: skip
    assert r.exit_code == 0, r.output
    sent = server.posted(BATCHES)
    tool = {"path": "/data/bin/tool.py", "content": "print(1)", "type": "FILE"}
    assert sent["template"]["inputs"] == [tool]
    assert sent["reduce"]["inputs"] == [tool]
    assert sent["reduce"]["executors"][0]["workdir"] == "/data"
    batch = server.client().map(
        "img", ["wc"], over="s3://b/*", to="s3://b/o/", content={"/work/t.sh": "wc"},
        reduce=("img", ["sh", "/work/t.sh"]),
    )  # fmt: skip
    assert batch.id == "b1"
    assert server.posted(BATCHES)["reduce"] == build_task(
        "img", ["sh", "/work/t.sh"], content={"/work/t.sh": "wc"}
    )


def test_a_refused_batch_shows_the_servers_reason() -> None:
    server = batches()
    server.routes[("POST", BATCHES)] = lambda _: httpx.Response(
        400, json={"detail": "params[1]: parameter 'min': 0 is below its minimum 1"}
    )
    with pytest.raises(InvalidRequest, match=r"params\[1\]: parameter 'min'"):
        invoke(server, sweep, "--service", "wc", "--param", "min=1,0")
