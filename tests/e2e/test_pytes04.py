"""py-tes 0.4, unchanged, against a real toolship server with the real podman executor.

The version Snakemake's and Toil's TES plugins pin (TES 1.0): service-info at
/v1/tasks/service-info, and every answer unmarshalled strictly.  A task reads back
exactly what the client sent; toolship's own route still says how it ran.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venvs" / "pytes04" / "bin" / "python"
DRIVER = Path(__file__).parent / "drivers" / "pytes04_driver.py"
SERVER_FIELDS = {"id", "state", "creation_time", "logs"}


def test_pytes04_service_info_create_get_list_cancel(
    server: Any, api: httpx.Client, busybox: str, tmp_path: Path
) -> None:
    require(PYTHON.exists(), "the py-tes 0.4 client venv", "run scripts/client-venv.sh pytes04")
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.run(
        [str(PYTHON), str(DRIVER), server.url, server.token, busybox, str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    found: dict[str, Any] = json.loads(run.stdout)

    assert found["service"]["name"] == "toolship"
    assert any(p.startswith("file://") for p in found["service"]["storage"])

    plain = found["plain"]["views"]
    assert plain["MINIMAL"] == {"id": found["plain"]["id"], "state": "COMPLETE"}
    assert "resources" not in plain["BASIC"] and "resources" not in plain["FULL"]
    assert plain["FULL"]["logs"][0]["logs"][0]["stdout"] == "from-pytes04\n"
    assert "stdout" not in plain["BASIC"]["logs"][0]["logs"][0]

    snakemake = found["snakemake"]["views"]["FULL"]
    assert snakemake["state"] == "COMPLETE", snakemake["logs"]
    assert snakemake["resources"] == {}  # as sent: nothing added
    assert snakemake["tags"] == {"client": "pytes04"}
    assert snakemake["inputs"][0]["content"] == "echo hello > /data/out.txt\n"
    assert "content" not in found["snakemake"]["views"]["BASIC"]["inputs"][0]
    assert (out / "out.txt").read_text() == "hello\n"

    toil = found["toil"]["views"]["FULL"]
    assert toil["state"] == "EXECUTOR_ERROR"
    assert toil["logs"][0]["logs"][0]["exit_code"] == 3
    assert toil["resources"] == {"cpu_cores": 1, "ram_gb": 0.25, "disk_gb": 1.0,
                                 "preemptible": False}  # fmt: skip

    assert found["cancel"]["state"] == "CANCELED"
    ids = [found[k]["id"] for k in ("plain", "snakemake", "toil", "cancel")]
    for view, listed in found["listed"].items():
        assert sorted(t["id"] for t in listed) == sorted(ids), view
    assert all(set(t) == {"id", "state"} for t in found["listed"]["MINIMAL"])

    # The TES task is what the client sent; toolship's own route says how it ran.
    raw = api.get(f"/v1/tasks/{found['plain']['id']}", params={"view": "FULL"}).json()
    assert {k: v for k, v in raw.items() if k not in SERVER_FIELDS} == {
        "name": "pytes04-plain",
        "executors": [{"image": busybox, "command": ["sh", "-c", "echo from-pytes04"]}],
    }
    details = api.get(f"/api/v1/tasks/{found['plain']['id']}").json()
    assert details["runtime"] == "podman"
    assert details["resources"]["backend_parameters"] == {"runtime": "podman"}
