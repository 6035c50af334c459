"""Requests shaped exactly as Nextflow's TES executor sends them (Nextflow itself cannot be
fetched here): control files and inputs from the task's work directory URL mounted under
/work, outputs named back into that directory (FILE, and a glob with path_prefix=/work),
the exit code read from FULL ``logs[0].logs[0].exit_code``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

TES = "/v1"  # Nextflow calls {endpoint}/v1/tasks

WRAPPER = """#!/bin/bash
# a cut-down .command.run: run the script, keep its streams and exit code beside it
bash .command.sh > .command.out 2> .command.err
rc=$?
printf '%s' "$rc" > .command.exitcode
exit $rc
"""


def nextflow_task(workdir: Path, data: Path, script: str) -> dict[str, Any]:
    (workdir / ".command.sh").write_text(script)
    (workdir / ".command.run").write_text(WRAPPER)
    wd = f"file://{workdir}"
    inputs = [
        {"url": f"{wd}/.command.sh", "path": "/work/.command.sh", "type": "FILE"},
        {"url": f"{wd}/.command.run", "path": "/work/.command.run", "type": "FILE"},
        {"url": f"file://{data}", "path": "/work/reads.txt", "type": "FILE"},
    ]
    outputs = [
        {"url": f"{wd}/{name}", "path": f"/work/{name}", "type": "FILE"}
        for name in (".command.out", ".command.err", ".command.log", ".command.exitcode")
    ]
    outputs.append({"url": wd, "path": "/work/*.tsv", "path_prefix": "/work", "type": "FILE"})
    return {
        "name": "NFCORE:COUNT (1)",
        "inputs": inputs,
        "outputs": outputs,
        "resources": {"cpu_cores": 1, "ram_gb": 0.5},
        "executors": [
            {
                "image": "localhost/toolship-python",  # Nextflow's command needs /bin/bash
                "command": ["/bin/bash", "-c", "bash .command.run &> .command.log"],
                "workdir": "/work",
            }
        ],
    }


def run(api: httpx.Client, doc: dict[str, Any]) -> dict[str, Any]:
    r = api.post(f"{TES}/tasks", json=doc)
    assert r.status_code == 200, r.text
    tid = r.json()["id"]
    assert api.get(f"/api/v1/tasks/{tid}/wait", params={"timeout": 120}).json()["final"]
    full: dict[str, Any] = api.get(f"{TES}/tasks/{tid}", params={"view": "FULL"}).json()
    return full


def test_nextflow_shaped_task_round_trips(
    python_image: str, api: httpx.Client, tmp_path: Path
) -> None:
    workdir = tmp_path / "work" / "ab" / "cdef0123"
    workdir.mkdir(parents=True)
    data = tmp_path / "reads.txt"
    data.write_text("a\nb\nc\n")
    full = run(api, nextflow_task(workdir, data, "wc -l < reads.txt > counts.tsv\necho done\n"))
    assert full["state"] == "COMPLETE", full["logs"]
    assert full["logs"][0]["logs"][0]["exit_code"] == 0
    assert (workdir / "counts.tsv").read_text().strip() == "3"
    assert (workdir / ".command.out").read_text() == "done\n"
    assert (workdir / ".command.exitcode").read_text() == "0"
    # the inputs' mount points were not copied back over the real files
    assert (workdir / ".command.run").read_text() == WRAPPER
    assert data.read_text() == "a\nb\nc\n"


def test_nextflow_reads_a_failing_exit_code_from_full(
    python_image: str, api: httpx.Client, tmp_path: Path
) -> None:
    workdir = tmp_path / "work" / "12" / "3456"
    workdir.mkdir(parents=True)
    data = tmp_path / "reads.txt"
    data.write_text("x\n")
    full = run(api, nextflow_task(workdir, data, "echo bad >&2\nexit 3\n"))
    assert full["state"] == "EXECUTOR_ERROR"
    assert full["logs"][0]["logs"][0]["exit_code"] == 3
    assert (workdir / ".command.exitcode").read_text() == "3"
    assert (workdir / ".command.err").read_text() == "bad\n"
