"""The CWL v1.0 conformance tests through cwl-tes, unchanged, against a local toolship server.

``scripts/cwl-conformance.sh`` sets up what this needs (client venvs, images) and runs it;
``.venv/bin/python -m bench.cwl_conformance --help`` lists the options.  The suite is
vendored in tests/e2e/cwl-conformance (unchanged upstream files; EDAM.owl is stored
xz-compressed and decompressed into the working copy here).  The server is the embedded
one, in a private home under the work directory, with a JWT as its token: cwl-tes only
sends a ``--token`` it can verify as RS256 against ``--token-public-key``.

Tests keep the numbers of the full suite (1-197) whatever is selected, so a number in the
known-limits file, a log name and ``-n`` always mean the same test.  A failure or an
"unsupported" that is not in tests/e2e/cwl-tes-limits.txt, or a listed one that now passes,
makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from toolship.embedded import EmbeddedServer, ensure_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "tests" / "e2e" / "cwl-conformance"
SUITE_YAML = "conformance_test_v1.0.yaml"
LIMITS = ROOT / "tests" / "e2e" / "cwl-tes-limits.txt"
CWLTES_VENV = ROOT / ".venvs" / "cwltes"
CWLTEST_VENV = ROOT / ".venvs" / "cwltest"
SETUP = "run scripts/cwl-conformance.sh (it sets up the client venvs and images)"

# cwl-tes verifies its own --token as an RS256 JWT before sending it; made with its PyJWT.
MAKE_JWT = """
import json, jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
public = key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()
print(json.dumps({"token": jwt.encode({"sub": "toolship-cwl-conformance"}, key, algorithm="RS256"),
                  "public_key": public}))
"""
# The suite's tests in order (number = position + 1), read with cwltest's own YAML library.
LIST_TESTS = """
import json, sys
from ruamel.yaml import YAML
tests = YAML(typ="safe").load(open(sys.argv[1]))
print(json.dumps([{"id": t.get("id") or t.get("label") or "", "tags": t.get("tags", []),
                   "doc": (t.get("doc") or "").strip()} for t in tests]))
"""


@dataclass(frozen=True, slots=True)
class Case:
    number: int
    id: str
    tags: tuple[str, ...]
    doc: str


@dataclass(frozen=True, slots=True)
class Result:
    number: int
    id: str
    outcome: str  # passed | failed | unsupported
    seconds: float
    message: str
    log: str  # the per-test log file


@dataclass(frozen=True, slots=True)
class Limit:
    number: int
    id: str
    outcome: str  # failed | unsupported
    cause: str


def _need(path: Path, what: str) -> None:
    if not path.exists():
        raise SystemExit(f"cwl-conformance: {what} ({path}) is missing: {SETUP}")


def list_cases() -> list[Case]:
    _need(CWLTEST_VENV / "bin" / "python", "the cwltest client venv")
    out = subprocess.run(
        [str(CWLTEST_VENV / "bin" / "python"), "-c", LIST_TESTS, str(SUITE / SUITE_YAML)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    return [
        Case(number=i, id=t["id"], tags=tuple(t["tags"]), doc=t["doc"])
        for i, t in enumerate(json.loads(out), start=1)
    ]


def parse_numbers(text: str) -> list[int]:
    """``1,3-6,9`` as cwltest's -n reads it."""
    numbers: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        numbers.extend(range(int(first), int(last or first) + 1))
    return numbers


def select(cases: list[Case], tags: str | None, numbers: str | None) -> list[Case]:
    """The union of the tests with any of ``tags`` and the tests numbered ``numbers``;
    every test when neither is given."""
    if tags is None and numbers is None:
        return cases
    wanted = set(tags.split(",")) if tags else set()
    picked = set(parse_numbers(numbers)) if numbers else set()
    unknown = sorted(n for n in picked if not 1 <= n <= len(cases))
    if unknown:
        raise SystemExit(
            f"cwl-conformance: no test numbered {unknown} (the suite has 1-{len(cases)})"
        )
    return [c for c in cases if c.number in picked or wanted.intersection(c.tags)]


def read_limits(cases: list[Case], path: Path = LIMITS) -> dict[int, Limit]:
    """The known cwl-tes limitations: ``NUMBER ID OUTCOME CAUSE...`` lines, ``#`` comments.

    Each number must name the test with that id, so a renumbered suite cannot shift the list.
    """
    ids = {c.number: c.id for c in cases}
    limits: dict[int, Limit] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        number, test_id, outcome, cause = line.split(maxsplit=3)
        if ids.get(int(number)) != test_id or outcome not in ("failed", "unsupported"):
            raise SystemExit(
                f"cwl-conformance: {path}: '{line}' does not match the suite (test {number} is "
                f"{ids.get(int(number))!r}; the outcome is failed or unsupported)"
            )
        limits[int(number)] = Limit(int(number), test_id, outcome, cause)
    return limits


def prepare_suite(work: Path) -> Path:
    """A working copy of the suite with EDAM.owl decompressed; its YAML file."""
    copy = work / "suite"
    shutil.copytree(SUITE, copy)
    packed = copy / "v1.0" / "EDAM.owl.xz"
    (copy / "v1.0" / "EDAM.owl").write_bytes(lzma.decompress(packed.read_bytes()))
    packed.unlink()
    return copy / SUITE_YAML


def write_jwt_token(home: Path) -> str:
    """Make ``home``'s token a fresh RS256 JWT, as cwl-tes wants it; its public key (PEM)."""
    made = subprocess.run(
        [str(CWLTES_VENV / "bin" / "python"), "-c", MAKE_JWT],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    pair = json.loads(made.stdout)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = home / "token"
    token.write_text(pair["token"] + "\n")
    token.chmod(0o600)
    public_key: str = pair["public_key"]
    return public_key


@contextmanager
def jwt_server(home: Path) -> Iterator[tuple[EmbeddedServer, str]]:
    """The embedded server in ``home`` with a fresh JWT as its token; (server, public key)."""
    _need(CWLTES_VENV / "bin" / "cwl-tes", "the cwl-tes client venv")
    public_key = write_jwt_token(home)
    server = ensure_server(home)
    try:
        yield server, public_key
    finally:
        stop_server(home)


def _client_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TOOLSHIP_")}


def run_cwltest(
    cases: list[Case],
    work: Path,
    *,
    jobs: int,
    timeout: int,
    server: EmbeddedServer,
    public_key: str,
) -> list[Result]:
    """Run ``cases`` through cwltest and cwl-tes; per-test logs under ``work/tests``."""
    suite_yaml = prepare_suite(work)
    junit = work / "junit.xml"
    argv = [
        str(CWLTEST_VENV / "bin" / "cwltest"), "--test", str(suite_yaml),
        "--tool", str(CWLTES_VENV / "bin" / "cwl-tes"),
        "-n", ",".join(str(c.number) for c in cases), "-j", str(jobs),
        "--timeout", str(timeout), "--junit-xml", str(junit), "--junit-verbose",
        "--", "--tes", server.url, "--token", server.token, "--token-public-key", public_key,
    ]  # fmt: skip
    with (work / "cwltest.log").open("w") as log:
        subprocess.run(
            argv, cwd=suite_yaml.parent, env=_client_env(), stdout=log, stderr=subprocess.STDOUT,
            check=False, timeout=timeout * len(cases) + 600,
        )  # fmt: skip
    if not junit.exists():
        raise SystemExit(f"cwl-conformance: cwltest wrote no {junit}; see {work / 'cwltest.log'}")
    return read_junit(junit, cases, work / "tests")


def read_junit(junit: Path, cases: list[Case], logs: Path) -> list[Result]:
    """The results of ``cases`` (run in this order) from cwltest's JUnit XML.

    Matched by position: cwltest writes its i-th result under the name of the suite's i-th
    test, not of the i-th one it ran, so with ``-n`` the names in junit.xml are wrong.
    """
    ran = list(ET.parse(junit).getroot().iter("testcase"))
    if len(ran) != len(cases):
        raise SystemExit(f"cwl-conformance: {junit} has {len(ran)} results for {len(cases)} tests")
    logs.mkdir(exist_ok=True)
    results: list[Result] = []
    for test, case in zip(cases, ran, strict=True):
        failure, skipped = case.find("failure"), case.find("skipped")
        if failure is not None:
            outcome, message = "failed", failure.get("message") or failure.text or ""
        elif skipped is not None:
            outcome, message = "unsupported", skipped.get("message") or skipped.text or ""
        else:
            outcome, message = "passed", ""
        log = logs / f"{test.number:03d}-{test.id}.log"
        log.write_text(
            f"# {test.number} {test.id}: {test.doc}\n# {outcome}\n{message}\n"
            f"== stdout\n{case.findtext('system-out') or ''}\n"
            f"== stderr\n{case.findtext('system-err') or ''}\n"
        )
        seconds = float(case.get("time") or 0)
        results.append(Result(test.number, test.id, outcome, seconds, message, str(log)))
    return results


def judge(results: list[Result], limits: dict[int, Limit]) -> list[str]:
    """What makes the run fail: results not matching the known limits, one line each."""
    problems: list[str] = []
    for r in results:
        known = limits.get(r.number)
        if r.outcome != "passed" and (known is None or known.outcome != r.outcome):
            problems.append(f"{r.number} {r.id}: {r.outcome}, not a known limit; see {r.log}")
        elif r.outcome == "passed" and known is not None:
            problems.append(
                f"{r.number} {r.id}: passes now; remove it from {LIMITS.relative_to(ROOT)}"
            )
    return problems


def summary(results: list[Result], total: int, seconds: float) -> str:
    count = {o: sum(r.outcome == o for r in results) for o in ("passed", "failed", "unsupported")}
    return (
        f"CWL v1.0 conformance through cwl-tes: {count['passed']} passed, {count['failed']} "
        f"failed, {count['unsupported']} unsupported (of {len(results)}"
        + ("" if len(results) == total else f" selected, {total} in the suite")
        + f") in {seconds:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scripts/cwl-conformance.sh",
        description="Run the CWL v1.0 conformance tests through cwl-tes against a local "
        "toolship server and print the pass count.  Exit status 1 when a test fails (or is "
        f"unsupported) that {LIMITS.relative_to(ROOT)} does not list, or a listed one passes.",
    )
    ap.add_argument(
        "--tags",
        help="run the tests with any of these tags (comma-separated, e.g. required); "
        "with -n, the union",
    )
    ap.add_argument("-n", dest="numbers", help="run these tests by number, e.g. 1,3-6,9")
    ap.add_argument("-j", dest="jobs", type=int, default=2, help="tests at once (default 2)")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per test (default 300)")
    ap.add_argument("-l", dest="list", action="store_true", help="list the tests and exit")
    ap.add_argument(
        "--work",
        type=Path,
        help="directory for the logs, the suite's working copy and the server's home "
        "(default: a new one under $TMPDIR, kept)",
    )
    args = ap.parse_args(argv)

    cases = list_cases()
    chosen = select(cases, args.tags, args.numbers)
    limits = read_limits(cases)
    if args.list:
        for c in chosen:
            known = f"  [known {limits[c.number].outcome}]" if c.number in limits else ""
            print(f"{c.number:3d} {c.id}  ({', '.join(c.tags)}){known}")
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="toolship-cwl-conformance."))
    work.mkdir(parents=True, exist_ok=True)
    print(f"cwl-conformance: {len(chosen)} tests, -j {args.jobs}; logs in {work}", flush=True)
    start = time.monotonic()
    with jwt_server(work / "home") as (server, public_key):
        results = run_cwltest(
            chosen, work, jobs=args.jobs, timeout=args.timeout, server=server, public_key=public_key
        )
    seconds = time.monotonic() - start
    (work / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    for r in results:
        if r.outcome != "passed":
            known = limits.get(r.number)
            why = f"known: {known.cause}" if known and known.outcome == r.outcome else "NEW"
            print(f"  {r.outcome:11s} {r.number:3d} {r.id}  ({why})")
    print(f"cwl-conformance: per-test logs in {work / 'tests'}, server log {work / 'home'}")
    problems = judge(results, limits)
    for p in problems:
        print(f"cwl-conformance: {p}")
    print(summary(results, len(cases), seconds), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
