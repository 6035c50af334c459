"""The CLI's -i/-o/--content shorthand becomes the TES task a user expects."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolship.errors import InvalidRequest
from toolship.spec import build_task


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
