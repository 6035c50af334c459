"""What `toolship service run` sends besides ports and parameters: the task arguments of
`toolship run` without image and command, and local paths as file:// URLs the server can
read (a folder ends in /)."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolship.spec import build_task, local_url, task_template


def test_a_template_is_the_task_without_image_command_or_a_default_workdir() -> None:
    assert task_template() == {}
    t = task_template(
        cpu=2, memory="1G", timeout="1h", name="n", tags=["k=v"], env=["A=1"],
        inputs=["ref=/data/ref/"], network=True, params=["partition=gpu"],
    )  # fmt: skip
    assert t["executors"] == [{"env": {"A": "1"}}]  # no workdir: the service's own applies
    assert t["inputs"] == [{"path": "/work/ref", "url": "file:///data/ref", "type": "DIRECTORY"}]
    full = build_task(
        "img", ["x"], cpu=2, memory="1G", timeout="1h", name="n", tags=["k=v"],
        env=["A=1"], inputs=["ref=/data/ref/"], network=True, params=["partition=gpu"],
    )  # fmt: skip
    assert {k: v for k, v in full.items() if k != "executors"} == {
        k: v for k, v in t.items() if k != "executors"
    }


def test_a_template_keeps_a_workdir_given_and_starts_relative_paths_there() -> None:
    t = task_template(workdir="/w", volumes=["cache"])
    assert t == {"executors": [{"workdir": "/w"}], "volumes": ["/w/cache"]}


def test_a_template_refuses_what_is_not_a_task_argument() -> None:
    with pytest.raises(TypeError, match="'image'"):
        task_template(image="img")  # type: ignore[call-arg]


def test_local_paths_become_absolute_file_urls_and_folders_end_in_a_slash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    monkeypatch.chdir(tmp_path)
    assert local_url("data") == f"file://{tmp_path}/data/"
    assert local_url("data/") == f"file://{tmp_path}/data/"
    assert local_url("data/a.txt") == f"file://{tmp_path}/data/a.txt"
    assert local_url("results") == f"file://{tmp_path}/results"  # not there yet: as given
    assert local_url("results/") == f"file://{tmp_path}/results/"
    assert local_url("s3://bucket/x") == "s3://bucket/x"
    assert local_url("https://h/data") == "https://h/data"
