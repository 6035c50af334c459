"""The GA4GH TES compliance suite (ELIXIR Cloud's openapi-test-runner), unchanged, against a
real toolship server and podman, for TES 1.1.0 (/ga4gh/tes/v1) and 1.0.0 (/v1).

The same run as scripts/tes-compliance.sh, with the same code (bench/tes_compliance.py).
Every test file must pass, except the suite's own bugs listed in ``SUITE_BUGS`` with their
cause; for the one listed, the last test here checks what it meant to, once the tasks ran.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench import tes_compliance as compliance

from tests.conftest import require

SETUP = "run scripts/tes-compliance.sh --setup (scripts/test.sh does)"
# How many of the vendored suite's 23 test files are for each version: every one must run,
# so a runner that skips them all (a version it does not know) cannot pass vacuously.
FILES = {"1.1.0": 23, "1.0.0": 16}
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}


def _require_setup() -> None:
    require(compliance.VENV.exists(), "the client venv tescompliance", SETUP)
    found = subprocess.run(["podman", "image", "exists", "alpine"], check=False).returncode == 0
    require(found, "image alpine (toolship-busybox tagged so)", SETUP)


@pytest.mark.timeout(900)
def test_every_compliance_test_passes_for_tes_1_1_and_1_0(busybox: str, tmp_path: Path) -> None:
    _require_setup()
    with compliance.server(tmp_path / "home") as found:
        results = compliance.run_suite(
            found, tmp_path, versions=list(compliance.VERSIONS), jobs=4, timeout=600
        )
    summaries = [compliance.summary(results, v) for v in compliance.VERSIONS]
    assert not compliance.judge(results), "\n".join([*summaries, *compliance.judge(results)])
    ran = {v: sum(r.version == v and r.outcome != "skipped" for r in results) for v in FILES}
    assert ran == FILES, summaries
    passed = sum(r.outcome == "passed" for r in results)
    assert passed >= sum(FILES.values()) - len(compliance.SUITE_BUGS), summaries


def _suite_jobs(test: str) -> list[dict[str, Any]]:
    """The jobs of one of the suite's test files, read with the runner's own YAML library."""
    read = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"
    path = compliance.SUITE / "tests" / f"{test}.yml"
    out = subprocess.run(
        [str(compliance.VENV / "bin" / "python"), "-c", read, str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    jobs: list[dict[str, Any]] = json.loads(out)["jobs"]
    return jobs


def _finished(api: httpx.Client, task_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task: dict[str, Any] = api.get(f"/ga4gh/tes/v1/tasks/{task_id}?view=FULL").json()
        if task["state"] in TERMINAL:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish within {timeout:.0f}s")


def test_the_ignore_error_tasks_give_the_executor_logs_the_suite_expects_once_they_ran(
    api: httpx.Client,
) -> None:
    # The suite's create_task_ignore_error reads the logs without waiting (SUITE_BUGS):
    # the same tasks, read once finished, must give the executor logs its filters expect.
    _require_setup()
    jobs = _suite_jobs("create_task_ignore_error")
    creates = [j for j in jobs if j["name"] == "create_task"]
    gets = [j for j in jobs if j["name"] == "get_task"]
    assert len(creates) == len(gets) == 2
    # The command ERROR does not exist: without ignore_error the task stops there; with it,
    # the next executor runs and succeeds.
    states = ["EXECUTOR_ERROR", "COMPLETE"]
    for create, get, state in zip(creates, gets, states, strict=True):
        (log_filter,) = get["filter"]
        assert log_filter["path"] == "$response.logs[0].logs"
        made = api.post("/ga4gh/tes/v1/tasks", json=json.loads(create["request_body"]))
        assert made.status_code == 200, made.text
        task = _finished(api, made.json()["id"])
        assert task["state"] == state, task
        executor_logs = task["logs"][0]["logs"]
        assert len(executor_logs) == log_filter["size"], task["logs"]
        assert executor_logs[0]["exit_code"] != 0


def test_a_report_and_a_crash_are_read_and_judged(tmp_path: Path) -> None:
    def case(name: str, status: str) -> dict[str, str]:
        return {"case_name": name, "status": status, "message": f"{name} {status}"}

    report = tmp_path / "report.json"
    phase = {
        "status": "FAIL",
        "tests": [
            {"test_name": "create_task", "cases": [case("status_code", "PASS")]},
            {"test_name": "get_task", "cases": [case("status_code", "PASS"),
                                                case("Filter-1", "FAIL")]},
        ],
    }  # fmt: skip
    report.write_text(json.dumps({"phases": [phase]}))
    assert compliance.read_report(report) == ("failed", "get_task Filter-1", "Filter-1 FAIL")
    report.write_text(json.dumps({"phases": [{"status": "SKIP", "tests": []}]}))
    assert compliance.read_report(report)[0] == "skipped"

    crash = (
        "Traceback (most recent call last):\n"
        '  File "/w/suite/compliance_suite/test_runner.py", line 232, in validate_filters\n'
        "    filtered_value = eval(...)\n"
        '  File "<string>", line 1, in <module>\n'
        "IndexError: list index out of range\n"
    )
    where, message = compliance.read_crash(crash)
    assert (where, message) == (
        "crashed in validate_filters",
        "IndexError: list index out of range",
    )

    def result(version: str, test: str, outcome: str, where: str) -> compliance.Result:
        return compliance.Result(version, test, outcome, where, "m", 1.0, "log")

    known = ("1.1.0", "create_task_ignore_error")
    assert known in compliance.SUITE_BUGS
    fine = [
        result(*known, "failed", "get_task Filter-1"),
        result(*known, "crashed", "crashed in validate_filters"),
        result(*known, "passed", ""),
        result("1.0.0", "create_task_ignore_error", "skipped", ""),
    ]
    assert compliance.judge(fine) == []
    wrong = [
        result(*known, "failed", "create_task status_code"),  # not where the suite's bug is
        result("1.0.0", "service_info", "failed", "service_info status_code"),
        result("1.1.0", "get_task_full", "timed out", ""),
    ]
    assert [p.split(":")[0] for p in compliance.judge(wrong)] == [
        "1.1.0 create_task_ignore_error", "1.0.0 service_info", "1.1.0 get_task_full",
    ]  # fmt: skip
