"""The benchmark suite still runs (tiny sizes; the figures are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_every_benchmark_runs_and_reports_ratios(
    busybox: str, slurm_cluster: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "TOOLSHIP_BENCH_RESULTS": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    for name in ("overhead", "throughput", "api", "memory", "staging", "slurm", "ui"):
        assert f"== bench.{name}" in run.stdout
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert data["benchmark"] == name
        assert any(key.endswith("ratio") for key in data), data
    assert run.stdout.count("ratio") >= 9
