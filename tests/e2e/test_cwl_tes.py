"""cwl-tes, unchanged, runs a two-step CWL workflow through a real toolship server and podman.

cwl-tes only sends ``--token`` after checking it is an RS256 JWT signed by the key given in
``--token-public-key``; toolship takes any opaque bearer token.  So the test makes a key
pair and a JWT with the client venv's own PyJWT, and puts that JWT in the embedded
server's token file before the server starts.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.cwl_conformance import write_jwt_token

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venvs" / "cwltes"
CWL_TES = VENV / "bin" / "cwl-tes"
WORKFLOW = Path(__file__).parent / "workflows" / "cwl" / "pipeline.cwl"
SETUP = "run scripts/client-venv.sh cwltes"
TES = "/ga4gh/tes/v1"


def start_server_with_jwt(home: Path, request: pytest.FixtureRequest) -> tuple[Any, str]:
    """The embedded server, started with a JWT as its bearer token; (server, public key)."""
    public_key = write_jwt_token(home)
    server = request.getfixturevalue("server")  # reads the token file written above
    assert server.token == (home / "token").read_text().strip()
    return server, public_key


def test_cwl_tes_runs_a_two_step_workflow(
    home: Path, busybox: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    require(CWL_TES.exists(), "the cwl-tes client venv", SETUP)
    server, public_key = start_server_with_jwt(home, request)
    (tmp_path / "input.txt").write_text("hello toolship\ncwl on tes\n")
    (tmp_path / "job.json").write_text(json.dumps({"text": {"class": "File", "path": "input.txt"}}))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLSHIP_")}
    run = subprocess.run(
        [
            str(CWL_TES), "--tes", server.url,
            "--token", server.token, "--token-public-key", public_key,
            "--outdir", str(out), str(WORKFLOW), "job.json",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout)["result"]
    final = Path(result["path"])
    assert final.parent == out
    assert final.read_text() == "1: HELLO TOOLSHIP\n2: CWL ON TES\nlines=2\n"

    # Both steps really ran as TES tasks on this server, and step 2 read step 1's output.
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    ) as api:
        listed = api.get(f"{TES}/tasks", params={"view": "FULL"}).json()["tasks"]
    tasks = {t["name"]: t for t in listed}
    assert sorted(tasks) == ["number", "upper"], [t["name"] for t in listed]
    upper, number = tasks["upper"], tasks["number"]
    for task in (upper, number):
        assert task["state"] == "COMPLETE", task
        assert task["executors"][0]["image"] == "localhost/toolship-busybox"
        assert task["logs"][0]["logs"][0]["exit_code"] == 0
        assert all(i["url"].startswith("file:///") for i in task["inputs"])
        workdir = [o for o in task["outputs"] if o["type"] == "DIRECTORY"]
        assert workdir and workdir[0]["path"] == task["executors"][0]["workdir"]
        assert not float(task["resources"]["ram_gb"]).is_integer()  # cwl-tes sends MiB / 953.674
    assert upper["inputs"][0]["url"] == f"file://{tmp_path}/input.txt"
    assert upper["executors"][0]["stdin"] == upper["inputs"][0]["path"]
    assert upper["logs"][0]["logs"][0]["stdout"] == "HELLO TOOLSHIP\nCWL ON TES\n"
    step1_file = next(o["url"] for o in upper["outputs"] if o["type"] == "FILE")
    assert number["inputs"][0]["url"] == step1_file
    assert [o["path"].rsplit("/", 1)[1] for o in number["logs"][0]["outputs"]] == ["numbered.txt"]
