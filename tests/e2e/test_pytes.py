"""py-tes 1.1, unchanged, against a real toolship server with the real podman executor."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venvs" / "pytes" / "bin" / "python"
DRIVER = Path(__file__).parent / "drivers" / "pytes_driver.py"


def test_pytes_create_wait_get_list_cancel(server: Any, busybox: str) -> None:
    require(PYTHON.exists(), "the py-tes client venv", "run scripts/client-venv.sh pytes")
    run = subprocess.run(
        [str(PYTHON), str(DRIVER), server.url, server.token, busybox],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["service"] == "toolship"
    assert found["ok"]["state"] == "COMPLETE"
    assert found["ok"]["exit_code"] == 0
    assert found["ok"]["stdout"] == "from-pytes\n"
    assert found["ok"]["tags"] == {"client": "pytes"}
    assert found["fail"] == {"state": "EXECUTOR_ERROR", "exit_code": 7}
    assert found["cancel"] == "CANCELED"
    assert len(found["listed"]) == 3 and len(set(found["listed"])) == 3
    assert found["listed"][-1] == found["ok"]["id"]  # newest first, over 2 pages
