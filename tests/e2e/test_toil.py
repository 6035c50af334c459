"""Toil's TES batch system runs a Python workflow through toolship, unchanged.

Real client: Toil 7 + toil-batch-system-tes (py-tes 0.4, ``{url}/v1/tasks`` and
``{url}/v1/tasks/service-info``) from ``.venvs/toil``; real server and podman.
Each Toil job becomes one TES task whose one executor runs
``_toil_contained_executor`` (then Toil's worker) in the appliance image
``TOIL_APPLIANCE_SELF`` (``localhost/toolship-toil``, built by
``scripts/build-images.sh toil``).  The workflow's file job store lies under a
directory the operator shares with the containers (``local.shared_dirs``); the
plugin passes it to every task as a DIRECTORY input at its own path (the
server's ``service-info.storage`` covers it), and the jobs write into it, which
the operator allows with ``local.writable_shared_dirs``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import leftover_containers, require
from tests.e2e.engines import all_tasks, explain

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venvs" / "toil"
WORKFLOW = Path(__file__).parent / "workflows" / "toil" / "wordcount.py"


@pytest.fixture(scope="session")
def toil_python() -> Path:
    exe = VENV / "bin" / "python"
    require(exe.exists(), "the Toil client venv (.venvs/toil)", "run scripts/client-venv.sh toil")
    return exe


@pytest.fixture(scope="session")
def toil_appliance(toil_python: Path) -> str:
    """The appliance named with Toil's version and commit (Toil then asks no registry)."""
    version = subprocess.run(
        [str(toil_python), "-c", "import toil.version; print(toil.version.version)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    image = f"localhost/toolship-toil:{version}"
    ok = subprocess.run(["podman", "image", "exists", image], check=False).returncode == 0
    require(ok, f"image {image}", "run scripts/build-images.sh toil")
    return image


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cluster's shared file system: every container sees it, and may write inputs in it."""
    folder = tmp_path / "shared"
    folder.mkdir()
    monkeypatch.setenv("TOOLSHIP_LOCAL__SHARED_DIRS", json.dumps([str(folder)]))
    monkeypatch.setenv("TOOLSHIP_LOCAL__WRITABLE_SHARED_DIRS", json.dumps([str(folder)]))
    # The jobs write the job store the leader made, so they run as the leader's user
    # (on a root server the default local.task_user, nobody, could not).
    monkeypatch.setenv("TOOLSHIP_LOCAL__TASK_USER", f"{os.getuid()}:{os.getgid()}")
    return folder


def test_toil_workflow_runs_through_its_tes_batch_system(
    shared: Path, server: Any, toil_python: Path, toil_appliance: str, tmp_path: Path
) -> None:
    # On the shared file system, like the job store: Toil links imported files into its
    # file job store rather than copying them, so the jobs read them where they are.
    data = shared / "data"
    data.mkdir()
    (data / "alpha.txt").write_text("one two three\n")
    (data / "beta.txt").write_text("four five\n")
    job_store = shared / "jobstore"
    summary = tmp_path / "summary.txt"
    env = {
        **os.environ,
        "TOIL_APPLIANCE_SELF": toil_appliance,
        "TOIL_TES_BEARER_TOKEN": server.token,  # the plugin's documented variable
        "HOME": str(tmp_path),  # no ~/.aws for the plugin to pass along
    }
    argv = [
        str(toil_python), str(WORKFLOW), str(job_store),
        "--input", f"alpha={data / 'alpha.txt'}",
        "--input", f"beta={data / 'beta.txt'}",
        "--output", str(summary),
        "--batchSystem", "tes",
        "--tesEndpoint", server.url,
        "--defaultMemory", "512Mi",
        "--defaultDisk", "64Mi",
        "--retryCount", "0",
        "--logLevel", "INFO",
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(
        argv,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.monotonic() - started
    tasks = all_tasks(server)
    if proc.returncode != 0:
        pytest.fail(explain("the Toil leader", proc, tasks), pytrace=False)
    print(f"Toil workflow: {len(tasks)} TES tasks in {elapsed:.1f} s")

    assert summary.read_text() == "alpha 3\nbeta 2\n"
    # root, count_words x2, combine: each a task running Toil's worker in the appliance.
    assert len(tasks) == 4, explain("the Toil leader", proc, tasks)
    for task in tasks:
        assert task["state"] == "COMPLETE", explain("the Toil leader", proc, tasks)
        (executor,) = task["executors"]
        assert executor["image"] == toil_appliance
        assert executor["command"][0] == "_toil_contained_executor"
        (store,) = task["inputs"]  # the job store, at its own path
        assert (store["url"], store["path"], store["type"]) == (
            f"file://{job_store}", str(job_store), "DIRECTORY",
        )  # fmt: skip
        assert "backend_parameters" not in (task.get("resources") or {})
        assert task["logs"][-1]["logs"][0]["exit_code"] == 0
        assert leftover_containers(task["id"]) == []
