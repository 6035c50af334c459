"""`toolship ps --all --json` over 100 000 stored tasks streams page by page: the CLI's
memory does not grow with the number of tasks, and every task is listed exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.common import fill

from toolship.embedded import ensure_server, stop_server


def peak_rss_of(args: list[str], out: Path) -> int:
    """Run a CLI command in a fresh process; return its peak RSS in KiB (from wait4)."""
    with out.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "toolship", *args],
            stdout=fh,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={"TOOLSHIP_HOME": os.environ["TOOLSHIP_HOME"], "PATH": os.environ["PATH"]},
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    return usage.ru_maxrss


def test_ps_all_json_pages_through_100k_tasks_in_bounded_memory(home: Path, tmp_path: Path) -> None:
    fill(home, 1_000)
    ensure_server(home)
    try:
        small = peak_rss_of(["ps", "--all", "--json"], tmp_path / "small.json")
    finally:
        stop_server(home)
    fill(home, 99_000)
    ensure_server(home)
    try:
        big = peak_rss_of(["ps", "--all", "--json"], tmp_path / "big.json")
    finally:
        stop_server(home)
    with (tmp_path / "big.json").open() as fh:
        listed = json.load(fh)
    assert len(listed) == 100_000
    assert len({t["id"] for t in listed}) == 100_000
    # Holding 100 000 parsed tasks would take over 200 MiB by itself; paging must not.
    # (What growth there is comes from the C allocator, not from Python objects: traced
    # Python memory stays flat.)
    assert big - small < 64 * 1024, f"peak RSS grew from {small} KiB to {big} KiB"
