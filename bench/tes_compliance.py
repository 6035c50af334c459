"""The GA4GH TES compliance suite, unchanged, against a local toolship server.

The suite is ELIXIR Cloud's openapi-test-runner, vendored in tests/e2e/tes-compliance (its
README.md names the commit); its libraries live in the client venv .venvs/tescompliance.
``scripts/tes-compliance.sh`` sets up what this needs and runs it; ``.venv/bin/python -m
bench.tes_compliance --help`` lists the options.

Each test file of the suite runs in its own runner process, so one file that crashes the
runner (it does on an unexpected answer, see ``SUITE_BUGS``) cannot hide the others; the
runner's JSON report of each file says what passed.  The runner sends no credentials, so
a wrapper adds the server's bearer token to the one header dictionary it sends; nothing
else of the runner is changed.  The server is the embedded one, in a private home under
the work directory, as users run it (podman, token).

Versions: TES 1.1.0 at the spec's base path (/ga4gh/tes/v1) and 1.0.0 at /v1, the path
TES 1.0 clients use.  A file that fails, crashes or times out makes the exit status 1,
unless ``SUITE_BUGS`` lists it with the place it fails at.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from toolship.embedded import EmbeddedServer, ensure_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "tests" / "e2e" / "tes-compliance"
VENV = ROOT / ".venvs" / "tescompliance"
SETUP = "run scripts/tes-compliance.sh (it sets up the client venv and the image)"
# TES version -> the base the runner appends "v1" and the endpoint to.
VERSIONS = {"1.1.0": "/ga4gh/tes/", "1.0.0": "/"}
TOKEN_VAR = "TES_COMPLIANCE_TOKEN"
# The runner, unchanged, with the bearer token in the headers its client sends.
RUNNER = f"""
import os
from compliance_suite.constants.constants import REQUEST_HEADERS
REQUEST_HEADERS["TES"]["Authorization"] = "Bearer " + os.environ["{TOKEN_VAR}"]
from compliance_suite.cli import main
main()
"""

# Failures that are the suite's own bugs: (version, test file) -> (where it may fail, why).
# "where" is the runner's failing job and case ("get_task Filter-1"), or the runner function
# a crash ends in ("crashed in validate_filters").  A listed file may also pass.
SUITE_BUGS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("1.1.0", "create_task_ignore_error"): (
        ("get_task Filter-1", "crashed in validate_filters"),
        "reads logs[0].logs of a task right after creating it, without waiting for it to "
        "run (its other tests poll first), so it needs the task to have finished within one "
        "request: an empty logs list crashes the runner (IndexError), a running task fails "
        "the size filter.  Funnel's and Microsoft's TES servers report the same failure. "
        "tests/e2e/test_tes_compliance.py checks the same tasks once they have finished.",
    ),
}


@dataclass(frozen=True, slots=True)
class Result:
    version: str
    test: str  # the test file's name, without .yml
    outcome: str  # passed | failed | crashed | timed out | skipped (not for this version)
    where: str  # the first failing job and case, or where the runner crashed
    message: str
    seconds: float
    log: str  # the runner's output


def _need(path: Path, what: str) -> None:
    if not path.exists():
        raise SystemExit(f"tes-compliance: {what} ({path}) is missing: {SETUP}")


def suite_files() -> list[str]:
    """The suite's test files, by name."""
    return sorted(p.stem for p in (SUITE / "tests").glob("*.yml"))


def prepare_suite(work: Path) -> Path:
    """A working copy of the suite to run the runner in: it reads its schemas and templates
    relative to the current directory and writes a copy of its report into
    compliance_suite/web (the HTML report viewer, not vendored)."""
    copy = work / "suite"
    shutil.copytree(SUITE, copy)
    (copy / "compliance_suite" / "web").mkdir()
    return copy


@contextmanager
def server(home: Path) -> Iterator[EmbeddedServer]:
    """The embedded server in a private ``home``, stopped at the end."""
    home.mkdir(mode=0o700, parents=True)
    found = ensure_server(home)
    try:
        yield found
    finally:
        stop_server(home)


def read_report(report: Path) -> tuple[str, str, str]:
    """(outcome, where, message) of one test file from the runner's JSON report."""
    phase = json.loads(report.read_text())["phases"][0]
    status = phase["status"]
    if status == "SKIP":
        return "skipped", "", ""
    if status == "PASS":
        return "passed", "", ""
    for test in phase["tests"]:
        for case in test["cases"]:
            if case["status"] != "PASS":
                return "failed", f"{test['test_name']} {case['case_name']}", case["message"]
    return "failed", "", f"the report says {status}"


def read_crash(log: str) -> tuple[str, str]:
    """(where, message) of a runner that died: its last own frame and the exception."""
    lines = log.strip().splitlines()
    frames = [ln.strip() for ln in lines if ln.strip().startswith('File "')]
    own = [f for f in frames if "compliance_suite" in f]
    where = f"crashed in {own[-1].rsplit(' in ', 1)[1]}" if own else "crashed"
    return where, lines[-1] if lines else "no output"


def run_one(
    suite: Path, work: Path, version: str, test: str, found: EmbeddedServer, timeout: float
) -> Result:
    out = work / version / test
    out.mkdir(parents=True)
    log_path = work / version / f"{test}.log"
    argv = [
        str(VENV / "bin" / "python"), "-c", RUNNER, "report",
        "--server", found.url + VERSIONS[version], "--version", version,
        "--test-path", f"tests/{test}.yml", "--output_path", str(out),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLSHIP_")}
    env.update({TOKEN_VAR: found.token, "NO_COLOR": "1"})
    start = time.monotonic()
    try:
        with log_path.open("w") as log:
            done = subprocess.run(
                argv, cwd=suite, env=env, stdout=log, stderr=subprocess.STDOUT,
                timeout=timeout, check=False,
            )  # fmt: skip
    except subprocess.TimeoutExpired:
        outcome, where, message = "timed out", "", f"still running after {timeout:.0f} s"
    else:
        report = out / "report.json"
        if done.returncode == 0 and report.exists():
            outcome, where, message = read_report(report)
        else:
            outcome = "crashed"
            where, message = read_crash(log_path.read_text(errors="replace"))
    seconds = time.monotonic() - start
    return Result(version, test, outcome, where, message, seconds, str(log_path))


def run_suite(
    found: EmbeddedServer, work: Path, *, versions: list[str], jobs: int, timeout: float
) -> list[Result]:
    """Every test file for every version, ``jobs`` runner processes at once."""
    suite = prepare_suite(work)
    runs = [(v, t) for v in versions for t in suite_files()]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = [pool.submit(run_one, suite, work, v, t, found, timeout) for v, t in runs]
        return [r.result() for r in running]


def judge(results: list[Result]) -> list[str]:
    """What makes the run fail: a failure the suite's known bugs do not explain, one line each."""
    problems: list[str] = []
    for r in results:
        if r.outcome in ("passed", "skipped"):
            continue
        known = SUITE_BUGS.get((r.version, r.test))
        if known is None or r.where not in known[0]:
            problems.append(
                f"{r.version} {r.test}: {r.outcome} at {r.where or '?'}: {r.message}; see {r.log}"
            )
    return problems


def summary(results: list[Result], version: str) -> str:
    mine = [r for r in results if r.version == version]
    passed = sum(r.outcome == "passed" for r in mine)
    skipped = sum(r.outcome == "skipped" for r in mine)
    known = sum(r.outcome not in ("passed", "skipped") and not judge([r]) for r in mine)
    failed = len(mine) - passed - skipped - known
    return (
        f"TES {version} at {VERSIONS[version]}v1: {passed} passed, {failed} failed, "
        f"{known} known suite bugs ({len(mine) - skipped} tests; {skipped} are not for {version})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scripts/tes-compliance.sh",
        description="Run the GA4GH TES compliance suite (openapi-test-runner, vendored in "
        "tests/e2e/tes-compliance) against a local toolship server and print the pass "
        "counts.  Exit status 1 when a test fails that is not one of the suite's known bugs.",
    )
    ap.add_argument(
        "--version", action="append", choices=list(VERSIONS),
        help="TES version to test (repeatable; default: all)",
    )  # fmt: skip
    ap.add_argument("-j", dest="jobs", type=int, default=4, help="runners at once (default 4)")
    ap.add_argument(
        "--timeout", type=float, default=600, help="seconds per test file (default 600)"
    )
    ap.add_argument(
        "--work", type=Path,
        help="directory for the logs, reports, the suite's working copy and the server's "
        "home (default: a new one under $TMPDIR, kept)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    _need(VENV / "bin" / "python", "the tescompliance client venv")
    versions = args.version or list(VERSIONS)
    work = args.work or Path(tempfile.mkdtemp(prefix="toolship-tes-compliance."))
    work.mkdir(parents=True, exist_ok=True)
    print(f"tes-compliance: TES {', '.join(versions)}, -j {args.jobs}; logs in {work}", flush=True)
    start = time.monotonic()
    with server(work / "home") as found:
        results = run_suite(found, work, versions=versions, jobs=args.jobs, timeout=args.timeout)
    seconds = time.monotonic() - start
    (work / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    problems = judge(results)
    for r in results:
        if r.outcome not in ("passed", "skipped"):
            why = "known suite bug" if not judge([r]) else "NEW"
            print(f"  {r.version} {r.test}: {r.outcome} at {r.where} ({why}): {r.message}")
    for p in problems:
        print(f"tes-compliance: {p}")
    for version in versions:
        print(summary(results, version))
    print(f"tes-compliance: {seconds:.0f} s; per-test logs in {work}", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
