"""CWL v1.0 conformance through cwl-tes, unchanged, against a real toolship server and podman.

A subset of the suite that scripts/cwl-conformance.sh runs in full, with the same code
(bench/cwl_conformance.py): the 49 tests tagged ``required``, plus the tests that broke on
toolship in issue 14 (listed in ``ISSUE_14`` with what each needs from toolship).  Every
selected test must pass, except the cwl-tes limitations listed, each with its number and
cause, in tests/e2e/cwl-tes-limits.txt (the runner's list too); a listed test that passes
fails the test as well, so the list stays true.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from bench import cwl_conformance as conformance

from tests.conftest import require

# Test number (in the full suite) -> what toolship must do for it to pass (issue 14).
ISSUE_14 = {
    # Identical duplicate inputs (same path, same URL) are staged once, not refused:
    28: "wf_wc_scatter_multiple_nested: a scatter step with two links to one input",
    29: "wf_wc_scatter_multiple_flattened: the same, flattened",
    30: "wf_wc_nomultiple: the same tool without MultipleInputFeatureRequirement",
    113: "wf_scatter_twopar_oneinput_flattenedmerge: two scatter parameters, one input",
    91: "initial_workdir_expr: an InitialWorkDir entry that is also an input",
    # ... and a file:// input mounted inside a DIRECTORY output (the workdir) is delivered:
    98: "initial_workdir_output: ref.fasta, staged into the workdir, is globbed as an output",
    # Empty directories are kept in DIRECTORY outputs (then its second step is one of
    # cwl-tes's limits, "unsupported"; without them the test fails):
    122: "initialworkdir_nesteddir: mkdir -p deeply/nested/dir/structure",
    # `tar x` in the container works (as podman run would; archive owned by another uid):
    86: "directory_output: tar xvf hello.tar",
    # The image's ENTRYPOINT is kept; command is its argument list:
    173: "docker_entrypoint: bash:4.4.12 (ENTRYPOINT bash) with command -c ...",
}
SETUP = "run scripts/cwl-conformance.sh --setup (scripts/test.sh does)"
IMAGES = ("python:2-slim", "python:2.7", "debian:stretch-slim", "bash:4.4.12", "alpine")


@pytest.mark.timeout(900)
def test_required_and_issue_14_tests_pass_through_cwl_tes(busybox: str, tmp_path: Path) -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    require(node is not None, "nodejs (cwltool runs the tests' JavaScript)", SETUP)
    for venv in (conformance.CWLTES_VENV, conformance.CWLTEST_VENV):
        require(venv.exists(), f"the client venv {venv.name}", SETUP)
    for image in IMAGES:
        found = subprocess.run(["podman", "image", "exists", image], check=False).returncode == 0
        require(found, f"image {image}", SETUP)
    cases = conformance.list_cases()
    chosen = conformance.select(cases, "required", ",".join(map(str, ISSUE_14)))
    start = time.monotonic()
    with conformance.jwt_server(tmp_path / "home") as (server, public_key):
        results = conformance.run_cwltest(
            chosen, tmp_path, jobs=2, timeout=300, server=server, public_key=public_key
        )
    assert [r.number for r in results] == [c.number for c in chosen]
    seconds = time.monotonic() - start
    problems = conformance.judge(results, conformance.read_limits(cases))
    assert not problems, "\n".join([conformance.summary(results, len(cases), seconds), *problems])


def test_the_limits_file_numbers_tests_of_the_suite() -> None:
    require(conformance.CWLTEST_VENV.exists(), "the client venv cwltest", SETUP)
    cases = conformance.list_cases()
    limits = conformance.read_limits(cases)  # refuses a number that names another test
    assert len(cases) == 197
    # What can pass through cwl-tes 0.3.0 (issue 14 hoped for 184; see 122 in the file).
    assert len(cases) - len(limits) == 183


def test_the_working_copy_has_edam_owl_where_the_format_tests_read_it(tmp_path: Path) -> None:
    suite_yaml = conformance.prepare_suite(tmp_path)
    edam = suite_yaml.parent / "v1.0" / "EDAM.owl"
    assert edam.read_bytes().startswith(b'<?xml version="1.0"?>')
    assert not edam.with_suffix(".owl.xz").exists()
    for tool in ("formattest2.cwl", "formattest3.cwl"):
        assert "- EDAM.owl" in (edam.parent / tool).read_text()


def test_selection_keeps_the_numbers_of_the_full_suite() -> None:
    cases = [
        conformance.Case(1, "a", ("required",), ""),
        conformance.Case(2, "b", ("docker",), ""),
        conformance.Case(3, "c", ("required", "docker"), ""),
        conformance.Case(4, "d", (), ""),
    ]
    assert [c.number for c in conformance.select(cases, "required", "4")] == [1, 3, 4]
    assert [c.number for c in conformance.select(cases, None, "2-3")] == [2, 3]
    assert conformance.select(cases, None, None) == cases


def test_results_are_matched_to_the_tests_run_by_position(tmp_path: Path) -> None:
    # cwltest names its i-th result after the suite's i-th test, whatever -n ran.
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="s">'
        '<testcase name="x" file="first"/>'
        '<testcase name="y" file="second"><failure message="boom"/></testcase>'
        '<testcase name="z" file="third"><skipped message="Unsupported"/></testcase>'
        "</testsuite></testsuites>"
    )
    ran = [conformance.Case(n, f"t{n}", (), "") for n in (7, 98, 118)]
    results = conformance.read_junit(junit, ran, tmp_path / "tests")
    assert [(r.number, r.outcome) for r in results] == [
        (7, "passed"), (98, "failed"), (118, "unsupported"),
    ]  # fmt: skip
    assert "boom" in Path(results[1].log).read_text()
    limits = {
        98: conformance.Limit(98, "t98", "failed", "x"),
        7: conformance.Limit(7, "t7", "failed", "x"),
    }
    problems = conformance.judge(results, limits)
    assert [p.split(":")[0] for p in problems] == ["7 t7", "118 t118"]
    assert "passes now" in problems[0]
    assert "not a known limit" in problems[1]
