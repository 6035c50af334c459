"""The services SDK and `toolship service …` against a scripted server (httpx's
MockTransport): what they send, how they read the replies, what a user sees."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from toolship import BuildFailed, Client, InvalidRequest
from toolship.cli.context import Ctx
from toolship.cli.services import run as run_command
from toolship.cli.services import service, split_ref
from toolship.cli.tasks import task_options
from toolship.services import ServiceVersion
from toolship.spec import task_template

Reply = Callable[[httpx.Request], object]
DIGEST = "sha256:" + "ab" * 32
OLD = "sha256:" + "cd" * 32

VERSION: dict[str, Any] = {
    "name": "wc",
    "version": "1.1",
    "description": "Count words",
    "repository": "localhost/wc",
    "digest": DIGEST,
    "image": f"localhost/wc@{DIGEST}",
    "image_id": "sha256:" + "ef" * 32,
    "size": 4_200_000,
    "registered": "2025-01-02T03:04:05Z",
    "source": "build",
    "reference": "localhost/wc:1.1",
    "labels": {"toolship.service.name": "wc"},
    "interface": {
        "inputs": [
            {"name": "text", "key": "input1", "kind": "file", "path": "/in/text.txt"},
            {"name": "books", "key": "input2", "kind": "directory", "path": "/in/books",
             "required": False},
            {"name": "lang", "key": "input3", "kind": "string", "path": "/in/lang",
             "default": "en"},
        ],
        "parameters": [
            {"name": "min", "kind": "int", "minimum": 1, "maximum": 10, "default": 2},
            {"name": "mode", "kind": "choice", "choices": ["fast", "exact"], "required": True},
        ],
        "outputs": [{"name": "counts", "key": "output1", "kind": "directory", "path": "/out"}],
        "command": ["wc", "{text}", "{min}"],
        "template": True,
        "cpu_cores": 2,
        "timeout": "1h",
    },
    "signature": {"verified": True, "key": "ABCD1234", "kind": "gpg"},
    "oci": {"licenses": "MIT"},
}  # fmt: skip
DEPRECATED = {**VERSION, "version": "1.2", "digest": OLD, "deprecated": True}


class Server:
    """Answers each (method, path) with a scripted body; remembers what it was sent."""

    def __init__(self, routes: dict[tuple[str, str], Reply]) -> None:
        self.routes = routes
        self.sent: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.sent.append(request)
        reply = self.routes.get((request.method, request.url.path))
        if reply is None:
            return httpx.Response(404, json={"detail": f"no {request.url.path}"})
        body = reply(request)
        return body if isinstance(body, httpx.Response) else httpx.Response(200, json=body)

    def client(self) -> Client:
        return Client("http://toolship.test", "token", transport=httpx.MockTransport(self))

    def posted(self, path: str) -> Any:
        return json.loads([r for r in self.sent if r.url.path == path][-1].content)


def catalog() -> Server:
    return Server(
        {
            ("GET", "/api/v1/services/wc"): lambda _: {
                "name": "wc",
                "versions": [DEPRECATED, VERSION],
            },
            ("GET", "/api/v1/services/wc/versions/1.1"): lambda _: VERSION,
            ("POST", "/api/v1/services/wc/runs"): lambda _: {"id": "t1"},
            ("GET", "/api/v1/services"): lambda _: {
                "services": [
                    {
                        "name": "wc",
                        "description": "Count words\nmore",
                        "latest": "1.1",
                        "digest": DIGEST,
                        "versions": 2,
                    }
                ],
            },
            ("POST", "/api/v1/services/wc/versions/1.1/deprecate"): lambda _: {
                **VERSION,
                "deprecated": True,
            },
            ("POST", "/api/v1/services"): lambda _: httpx.Response(201, json=VERSION),
        }
    )


def invoke(server: Server, *args: str) -> Any:
    ctx = Ctx(server=None, token=None, _client=server.client())
    return CliRunner().invoke(service, list(args), obj=ctx, catch_exceptions=False)


def test_a_run_sends_urls_for_file_ports_values_for_string_ports_and_pins_the_latest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "books").mkdir()
    monkeypatch.chdir(tmp_path)
    server = catalog()
    task = server.client().run_service(
        "wc",
        in_ports=["text=book.txt", "input2=books", "lang=books"],
        parameters={"min": 3, "mode": "fast"},
        out_ports={"counts": "results/"},
        cpu=4,
        name="count",
    )
    assert task.id == "t1"
    assert server.posted("/api/v1/services/wc/runs") == {
        "version": "1.1",  # the newest not deprecated, read for its ports and sent
        "inputs": {
            "text": f"file://{tmp_path}/book.txt",
            "input2": f"file://{tmp_path}/books/",  # a local folder ends in /
            "lang": "books",  # a string port: the value itself
        },
        "parameters": {"min": 3, "mode": "fast"},
        "outputs": {"counts": f"file://{tmp_path}/results/"},
        "task": task_template(cpu=4, name="count"),
    }


def test_a_run_of_a_named_version_reads_that_version_and_sends_no_empty_task() -> None:
    server = catalog()
    server.client().run_service(
        "wc", version="1.1", in_ports={"text": "s3://b/t.txt"}, parameters=["mode=exact"]
    )
    assert [r.url.path for r in server.sent] == [
        "/api/v1/services/wc/versions/1.1", "/api/v1/services/wc/runs",
    ]  # fmt: skip
    assert server.posted("/api/v1/services/wc/runs") == {
        "version": "1.1", "inputs": {"text": "s3://b/t.txt"},
        "parameters": {"mode": "exact"}, "outputs": {},
    }  # fmt: skip


def test_a_pair_without_equals_says_how_to_write_it() -> None:
    with pytest.raises(InvalidRequest, match=r"--in 'text' must look like PORT=URL"):
        catalog().client().run_service("wc", in_ports=["text"])
    with pytest.raises(InvalidRequest, match=r"--param 'min' must look like NAME=VALUE"):
        catalog().client().run_service("wc", parameters=["min"])


def test_catalog_replies_are_typed() -> None:
    client = catalog().client()
    assert client.services().services[0].latest == "1.1"
    assert [v.version for v in client.service("wc").versions] == ["1.2", "1.1"]
    got = client.register_service("localhost/wc:1.1", name="wc")
    assert isinstance(got, ServiceVersion) and got.interface.parameters[1].choices == [
        "fast", "exact",
    ]  # fmt: skip
    assert client.deprecate_service("wc", "1.1").deprecated


def build_server(state: str, log: list[bytes], error: str | None = None) -> Server:
    info = {"id": "b1", "state": "RUNNING", "started": "2025-01-02T03:04:05Z"}
    final = {**info, "state": state, "error": error, "service": VERSION if not error else None}
    return Server(
        {
            ("POST", "/api/v1/builds"): lambda _: httpx.Response(202, json=info),
            ("GET", "/api/v1/builds/b1/log"): lambda _: httpx.Response(200, content=iter(log)),
            ("GET", "/api/v1/builds/b1"): lambda _: final,
        }
    )


def _upload(request: httpx.Request) -> tuple[dict[str, str], set[str]]:
    """The form fields and the names in the tar of a multipart build request."""
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    fields: dict[str, str] = {}
    names: set[str] = set()
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = part.partition(b"\r\n\r\n")
        body = body[: -len(b"\r\n")]
        field = head.split(b'name="')[1].split(b'"')[0].decode()
        if field == "context":
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as tar:
                names = set(tar.getnames())
        else:
            fields[field] = body.decode()
    return fields, names


def test_a_build_uploads_the_folder_streams_its_log_and_returns_the_version(
    tmp_path: Path,
) -> None:
    (tmp_path / "Containerfile").write_text("FROM localhost/toolship-busybox\n")
    (tmp_path / "tool.sh").write_text("echo hi\n")
    server = build_server("SUCCEEDED", [b"STEP 1/2: FROM x\n", b"STEP 2/2: COPY\n"])
    seen: list[bytes] = []
    got = server.client().build_service(tmp_path, name="wc", on_log=seen.append)
    assert got.version == "1.1"
    assert b"".join(seen) == b"STEP 1/2: FROM x\nSTEP 2/2: COPY\n"
    fields, names = _upload(server.sent[0])
    assert fields == {"network": "false", "file": "Containerfile", "name": "wc"}
    assert names == {"Containerfile", "tool.sh"}
    assert server.sent[1].url.params["follow"] == "true"


def test_a_failed_build_raises_with_its_cause_and_the_end_of_its_log(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\nRUN false\n")
    lines = [f"line {n}\n".encode() for n in range(100)] + [b"Error: RUN false: exit 1"]
    server = build_server("FAILED", lines, error="step 2/2 (RUN false) exited 1")
    with pytest.raises(BuildFailed) as failed:
        server.client().build_service(tmp_path, network=True)
    message = str(failed.value)
    assert message.startswith("build b1 failed: step 2/2 (RUN false) exited 1")
    assert message.endswith("line 99\nError: RUN false: exit 1")
    assert "line 70\n" not in message  # the last 30 lines only
    assert _upload(server.sent[0])[0] == {"network": "true", "file": "Dockerfile"}
    with pytest.raises(BuildFailed) as watched:
        server.client().build_service(tmp_path, on_log=lambda _: None)
    assert "line 99" not in str(watched.value)  # shown already, as it came


def test_service_run_takes_every_option_of_toolship_run() -> None:
    @click.command()
    @task_options
    def plain(**_: object) -> None:
        """Nothing but the task options."""

    own = {p.name for p in run_command.params}
    assert {p.name for p in plain.params} <= own
    assert own - {p.name for p in plain.params} == {
        "ref", "in_ports", "parameters", "out_ports", "detach",
    }  # fmt: skip


def test_service_run_detached_prints_the_task_id_and_leaves_the_workdir_to_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server = catalog()
    r = invoke(server, "run", "wc@1.1", "--in", "text=a.txt", "--param", "mode=fast",
               "--out", "counts=out/", "--memory", "1G", "--tag", "p=x", "-d")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.output == "t1\n"
    sent = server.posted("/api/v1/services/wc/runs")
    assert sent["task"] == {"tags": {"p": "x"}, "resources": {"ram_gb": 1.0}}
    r = invoke(server, "run", "wc@1.1", "-w", "/data", "-d")
    assert server.posted("/api/v1/services/wc/runs")["task"] == {
        "executors": [{"workdir": "/data"}],
    }  # fmt: skip


def test_ls_is_a_table_and_json_is_what_the_server_sent() -> None:
    server = catalog()
    text = invoke(server, "ls").output
    assert text.splitlines()[0].split() == ["NAME", "LATEST", "DIGEST", "VERSIONS", "DESCRIPTION"]
    assert text.splitlines()[1].split() == ["wc", "1.1", DIGEST[:19], "2", "Count", "words"]
    assert json.loads(invoke(server, "ls", "--json").output)["services"][0]["versions"] == 2
    invoke(server, "ls", "-q", "count")
    assert server.sent[-1].url.params["q"] == "count"


def test_show_gives_ports_parameters_and_how_to_run_it() -> None:
    server = catalog()
    text = invoke(server, "show", "wc").output
    assert "wc@1.1" in text and "(deprecated" not in text.splitlines()[0]  # the latest live one
    for shown in (
        f"localhost/wc@{DIGEST}", "verified: gpg key ABCD1234", "wc {text} {min}",
        "2 cpu, timeout 1h (by default)", "/in/text.txt", "default en", "one of fast, exact",
        "1 ≤ min ≤ 10", "licenses", "toolship.service.name=wc", "1.2", "deprecated",
        "toolship service run wc@1.1 --in text=URL --param mode=VALUE --out counts=URL/",
    ):  # fmt: skip
        assert shown in text, shown
    assert json.loads(invoke(server, "show", "wc@1.1", "--json").output) == VERSION
    assert len(json.loads(invoke(server, "show", "wc", "--json").output)["versions"]) == 2


def test_add_and_deprecate() -> None:
    server = catalog()
    r = invoke(server, "add", "localhost/wc:1.1", "--version", "1.1")
    assert f"wc@1.1  localhost/wc@{DIGEST}" in r.output
    assert server.posted("/api/v1/services") == {"image": "localhost/wc:1.1", "version": "1.1"}
    assert invoke(server, "deprecate", "wc@1.1").output.startswith("deprecated wc@1.1")
    r = CliRunner().invoke(service, ["deprecate", "wc"], obj=Ctx(None, None))
    assert r.exit_code == 2 and "name the version, e.g. wc@1.0" in r.output


def test_name_at_version() -> None:
    assert split_ref("wc") == ("wc", None)
    assert split_ref("wc@1.1") == ("wc", "1.1")
    with pytest.raises(click.BadParameter, match="give a version after @"):
        split_ref("wc@")
    with pytest.raises(click.BadParameter, match="give the service's name"):
        split_ref("@1.0")
