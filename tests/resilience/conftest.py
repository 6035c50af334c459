"""Fixtures of the fault-injection suite: a moto bucket, the runs folder, a real server.

Each is set in the environment the server starts with: list them before ``server``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.resilience.harness import Bucket, cluster, moto_bucket, runs_folder
from tests.security.crashing import Server


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    with moto_bucket(monkeypatch, f"faults-{uuid.uuid4().hex[:8]}") as found:
        yield found


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with runs_folder(monkeypatch) as folder:
        yield folder


@pytest.fixture
def crashable(home: Path, busybox: str) -> Iterator[Server]:
    """A server of ``home``, not started: the test starts, kills and starts it again."""
    server = Server(home)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def on_slurm(slurm_cluster: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server's environment for the Slurm backend; afterwards the cluster whole again and
    no job of the test left running."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster))
    monkeypatch.setenv("TOOLSHIP_BACKEND", "slurm")
    monkeypatch.setenv("TOOLSHIP_SLURM__POLL_SECONDS", "1")
    try:
        yield
    finally:  # (the server stopped before: its fixture came later)
        subprocess.run(["scancel", "--user", str(os.getuid())], check=False)  # a failed test's
        cluster("start")  # starts what died; waits until both nodes answer
