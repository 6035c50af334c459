"""Snakemake with its TES executor plugin runs a multi-rule workflow through toolship.

Real client, unchanged: Snakemake + snakemake-executor-plugin-tes (py-tes 0.4,
``{url}/v1/tasks``) from ``.venvs/snakemake``; real server and podman.  Each
Snakemake job becomes one TES task: the job script as a ``content`` input at
``/tmp/run_snakemake.sh``, image ``snakemake/snakemake:v<version>`` (built
locally by ``scripts/build-images.sh snakemake``), workdir ``/tmp``.  The
plugin implies no shared file system, so Snakemake moves every file (and its
own source archive) through the default storage provider — here ``fs`` with
a prefix under tmp_path — from inside the task's container; the server shares
that prefix with its containers through ``local.shared_dirs``, as a cluster's
shared file system would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import leftover_containers, require
from tests.e2e.engines import all_tasks, explain

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venvs" / "snakemake"
WORKFLOW = Path(__file__).parent / "workflows" / "snakemake"


@pytest.fixture(scope="session")
def snakemake_exe() -> Path:
    exe = VENV / "bin" / "snakemake"
    require(exe.exists(), "the Snakemake client venv (.venvs/snakemake)",
            "run scripts/client-venv.sh snakemake")  # fmt: skip
    # Snakemake's fs storage plugin copies with rsync on this side too.
    require(shutil.which("rsync") is not None, "rsync", "apt-get install rsync")
    return exe


@pytest.fixture(scope="session")
def snakemake_image(snakemake_exe: Path) -> str:
    version = subprocess.run(
        [str(snakemake_exe), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    image = f"snakemake/snakemake:v{version}"  # what the plugin sends by default
    ok = subprocess.run(["podman", "image", "exists", image], check=False).returncode == 0
    require(ok, f"image {image}", "run scripts/build-images.sh snakemake")
    return image


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Snakemake's default storage prefix, shared with every container (local.shared_dirs)."""
    prefix = tmp_path / "storage"
    prefix.mkdir()
    monkeypatch.setenv("TOOLSHIP_LOCAL__SHARED_DIRS", json.dumps([str(prefix)]))
    # The containers read and write Snakemake's own files there, so they run as the user
    # Snakemake runs as (on a root server the default local.task_user, nobody, could not).
    monkeypatch.setenv("TOOLSHIP_LOCAL__TASK_USER", f"{os.getuid()}:{os.getgid()}")
    return prefix


def test_snakemake_workflow_runs_to_completion(
    storage: Path, server: Any, snakemake_exe: Path, snakemake_image: str, tmp_path: Path
) -> None:
    workdir = tmp_path / "workflow"
    shutil.copytree(WORKFLOW, workdir)
    (storage / "data").mkdir(parents=True)
    (storage / "data" / "alpha.txt").write_text("one two three\n")
    (storage / "data" / "beta.txt").write_text("four five\n")

    env = {
        **os.environ,
        "SNAKEMAKE_TES_TOKEN": server.token,  # the plugin's documented env var
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    argv = [
        str(snakemake_exe),
        "--executor", "tes",
        "--tes-url", server.url,
        "--jobs", "2",
        "--default-storage-provider", "fs",
        "--default-storage-prefix", str(storage),
        "--nocolor",
    ]  # fmt: skip
    proc = subprocess.run(
        argv,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240,  # the plugin waits 40 s before its first status check
        check=False,
    )
    tasks = all_tasks(server)
    if proc.returncode != 0:
        pytest.fail(explain("snakemake", proc, tasks), pytrace=False)

    assert (storage / "results" / "alpha.count").read_text() == "3\n"
    assert (storage / "results" / "beta.count").read_text() == "2\n"
    assert (storage / "results" / "summary.txt").read_text() == "alpha 3\nbeta 2\n"

    # Three jobs ran as TES tasks (count_words x2, combine; `all` runs locally).
    assert sorted(t["name"] for t in tasks) == [
        "snakejob.combine.1.sh",
        "snakejob.count_words.2.sh",
        "snakejob.count_words.3.sh",
    ]
    for task in tasks:
        assert task["state"] == "COMPLETE", explain("snakemake", proc, tasks)
        (executor,) = task["executors"]
        assert executor["image"] == snakemake_image
        assert executor["command"] == ["/bin/bash", "/tmp/run_snakemake.sh"]
        assert executor["workdir"] == "/tmp"
        (script,) = task["inputs"]
        assert script["path"] == "/tmp/run_snakemake.sh"
        assert "python -m snakemake" in script["content"]
        assert task["logs"][-1]["logs"][0]["exit_code"] == 0
        assert leftover_containers(task["id"]) == []
