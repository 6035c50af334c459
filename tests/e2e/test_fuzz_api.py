"""Property-based fuzzing of the whole HTTP API against the server's own OpenAPI document.

Schemathesis generates valid and invalid requests for every operation; the run must find
no 5xx, no undocumented status code or content type, and no response that breaks the
published schema.  (Its stricter opinions — "this schema-valid request should have been
accepted" — are left out: toolship refuses, on purpose, things the JSON schema cannot
express, such as relative container paths; each such refusal is a documented 400.)

The stateful run chains calls along the document's OpenAPI links (api/links.py): a task
or batch created is then read, waited for, cancelled, rerun..., with the same checks, and
one more: what a POST just created is found (not a 404) by the calls its links lead to.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
ST = ROOT / ".venvs" / "schemathesis" / "bin" / "schemathesis"
STATEFUL_CONFIG = Path(__file__).with_name("schemathesis-stateful.toml")
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]
SEED = "20261121"


def _schemathesis(server: Any, cwd: Path, *options: str, config: tuple[str, ...] = ()) -> str:
    """Run schemathesis against the server; its output, after asserting it found nothing."""
    require(ST.exists(), "the schemathesis venv", "run scripts/client-venv.sh schemathesis")
    run = subprocess.run(
        [
            str(ST), *config, "run", f"{server.url}/openapi.json",
            "--seed", SEED,
            # One worker: CPython 3.11's ast module is not thread-safe ("AST constructor
            # recursion depth mismatch" inside schemathesis with two workers, seen once).
            "--workers", "1",
            "--header", f"Authorization: Bearer {server.token}",
            *options,
        ],
        capture_output=True, text=True, timeout=600, check=False, cwd=cwd,
    )  # fmt: skip
    tail = run.stdout[-6000:]
    found = run.stdout.find("= FAILURES =")  # each failure, before the long warnings
    assert run.returncode == 0, (run.stdout[found : found + 6000] if found >= 0 else "") + tail
    assert "generated" in tail and "No tests were run" not in tail, tail
    return run.stdout


def test_openapi_fuzz_finds_nothing(server: Any, tmp_path: Path) -> None:
    _schemathesis(
        server, tmp_path,
        "--phases", "examples,coverage,fuzzing",
        "--checks", ",".join(CHECKS),
        "--max-examples", "40",
    )  # fmt: skip


def test_stateful_fuzz_follows_the_links_and_finds_nothing(server: Any, tmp_path: Path) -> None:
    har = tmp_path / "calls.har"
    out = _schemathesis(
        server, tmp_path,
        "--phases", "stateful",
        "--checks", ",".join([*CHECKS, "ensure_resource_availability"]),
        "--max-examples", "150",
        "--report", "har", "--report-har-path", str(har),
        config=("--config-file", str(STATEFUL_CONFIG)),
    )  # fmt: skip
    links = re.search(r"API Links:\s+\d+ covered / (\d+) selected", out)
    assert links and int(links[1]) > 30, out[-3000:]
    calls = json.loads(har.read_text())["log"]["entries"]
    # The links were followed: tasks and batches created were then used by their ids.
    assert _used(calls, "/ga4gh/tes/v1/tasks"), "no task CreateTask made was used after"
    assert _used(calls, "/api/v1/batches"), "no batch CreateBatch made was used after"


def _used(calls: list[dict[str, Any]], create: str) -> set[str]:
    """The ids ``POST create`` answered with that a later call put in its path."""
    made: set[str] = set()
    used: set[str] = set()
    for call in calls:
        method, path = call["request"]["method"], unquote(urlsplit(call["request"]["url"]).path)
        used |= {i for i in made if f"/{i}" in path}
        if method == "POST" and path == create and call["response"]["status"] == 200:
            made.add(json.loads(call["response"]["content"]["text"])["id"])
    return used
