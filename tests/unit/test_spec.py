"""The CLI's -i/-o/--content shorthand becomes the TES task a user expects; the task
arguments are declared once, and the CLI's options carry their names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import pytest

from toolship.cli.batches import batch_options
from toolship.cli.tasks import F, run, task_options
from toolship.errors import InvalidRequest
from toolship.spec import TASK_ARGUMENTS, BatchArguments, MemberArguments, build_task


def test_relative_paths_are_under_the_workdir_and_local_paths_become_file_urls(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    t = build_task(
        "img",
        ["tool"],
        inputs=[f"in.txt={data}/in.txt", f"ref={data}/"],
        outputs=[f"out/*.png={tmp_path}/results/", f"/work/log.txt={tmp_path}/log.txt"],
        content=["cfg.json={}"],
    )
    assert t["executors"][0]["workdir"] == "/work"
    assert t["inputs"][0] == {
        "path": "/work/in.txt",
        "url": f"file://{data}/in.txt",
        "type": "FILE",
    }
    assert t["inputs"][1] == {"path": "/work/ref", "url": f"file://{data}", "type": "DIRECTORY"}
    assert t["inputs"][2] == {"path": "/work/cfg.json", "content": "{}", "type": "FILE"}
    assert t["outputs"][0] == {
        "path": "/work/out/*.png",
        "url": f"file://{tmp_path}/results",
        "type": "FILE",
        "path_prefix": "/work/out",
    }
    assert t["outputs"][1]["type"] == "FILE"


def test_wildcard_output_needs_a_directory_url() -> None:
    with pytest.raises(InvalidRequest, match="ending in '/'"):
        build_task("img", ["x"], outputs=["*.txt=/tmp/results"])


def test_resources_and_switches() -> None:
    t = build_task("img", ["x"], cpu=2, memory="512M", disk="1G", timeout="30m", network=True)
    res = t["resources"]
    assert res["cpu_cores"] == 2
    assert res["ram_gb"] == 0.5
    assert res["disk_gb"] == 1.0
    assert res["backend_parameters"] == {"timeout": "1800s", "network": "true"}
    assert res["backend_parameters_strict"] is True


def test_content_from_a_file(tmp_path: Path) -> None:
    f = tmp_path / "script.sh"
    f.write_text("echo hi\n")
    t = build_task("img", ["sh", "script.sh"], content=[f"script.sh=@{f}"])
    assert t["inputs"][0]["content"] == "echo hi\n"


def test_bad_pairs_say_how_to_write_them() -> None:
    with pytest.raises(InvalidRequest, match="PATH=VALUE"):
        build_task("img", ["x"], inputs=["justapath"])
    with pytest.raises(InvalidRequest, match="not a size"):
        build_task("img", ["x"], memory="lots")


def test_every_task_argument_lands_where_the_server_reads_it() -> None:
    t = build_task(
        "img", ["x"], workdir="/w", env={"A": "1"}, name="n", tags=["k=v"], volumes=["cache"],
        sync="/tmp/s", runtime="process", priority=3, writable_inputs=True, retries=2,
        retry_on="oom", after=["a", "b"], gpus=1, nodes=2, params=["Partition=gpu"],
    )  # fmt: skip
    assert t["executors"] == [
        {"image": "img", "command": ["x"], "workdir": "/w", "env": {"A": "1"}}
    ]
    assert (t["name"], t["tags"], t["volumes"]) == ("n", {"k": "v"}, ["/w/cache"])
    assert t["inputs"] == [{"path": "/w", "url": "file:///tmp/s", "type": "DIRECTORY"}]
    assert t["outputs"] == [{"path": "/w", "url": "file:///tmp/s", "type": "DIRECTORY"}]
    assert t["resources"] == {
        "backend_parameters": {
            "runtime": "process", "priority": "3", "writable_inputs": "true", "retries": "2",
            "retry_on": "oom", "after": "a,b", "gpus": "1", "nodes": "2", "partition": "gpu",
        },
        "backend_parameters_strict": True,
    }  # fmt: skip
    assert build_task("img", ["x"], gpus=0, after=(), network=False) == {
        "executors": [{"image": "img", "command": ["x"], "workdir": "/work"}]
    }


def test_sync_refuses_another_input_inside_its_folder_saying_where_to_put_it() -> None:
    """The server refuses nested inputs; --sync's own is the workdir, which the user never
    wrote as an input, so the message names --sync and a path that works."""
    with pytest.raises(InvalidRequest, match=r"--content /work/tool.py: --sync stages .* /opt/"):
        build_task("img", ["x"], sync="s3://b/job/", content=["tool.py=print(1)"])
    into_workdir = r"-i /w/ref: --sync stages its folder into the workdir /w"
    with pytest.raises(InvalidRequest, match=into_workdir):
        build_task("img", ["x"], sync="s3://b/job/", workdir="/w", inputs=["ref=s3://b/ref"])
    t = build_task("img", ["x"], sync="s3://b/job/", content=["/opt/tool.py=print(1)"])
    assert [i["path"] for i in t["inputs"]] == ["/work", "/opt/tool.py"]


def test_an_unknown_argument_is_refused_with_the_known_ones() -> None:
    with pytest.raises(TypeError, match=r"'cpus'.* cpu, "):
        build_task("img", ["x"], cpus=2)  # type: ignore[call-arg]


def _parameter_names(options: Callable[[F], F]) -> set[str]:
    @click.command()
    @options
    def command(**_: object) -> None:
        """A command with nothing but these options."""

    return {p.name for p in command.params if p.name}


# Task arguments whose CLI option is named otherwise, by design (argument -> option): none.
RENAMED: dict[str, str] = {}


def test_the_cli_task_options_are_the_task_arguments() -> None:
    # --cache is `run`'s own option: batch members are not answered from the cache.
    expected = {RENAMED.get(a, a) for a in TASK_ARGUMENTS} - {"cache"}
    assert _parameter_names(task_options) == expected
    assert "cache" in {p.name for p in run.params}


def test_the_cli_batch_options_are_the_batch_arguments() -> None:
    own = BatchArguments.__optional_keys__ - MemberArguments.__optional_keys__
    # --priority is a task option (it orders the batch as well); -d is the CLI's alone.
    assert _parameter_names(batch_options) == own - {"priority"} | {"detach"}
    assert "priority" in TASK_ARGUMENTS
    assert MemberArguments.__optional_keys__ == TASK_ARGUMENTS - {"priority", "params", "cache"}
