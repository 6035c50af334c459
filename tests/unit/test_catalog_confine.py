"""What a service build is confined by: the task's user namespace and the build settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolship.catalog import confine
from toolship.catalog.confine import BuildLimits, Confinement
from toolship.config import Settings
from toolship.runtime.base import IdMap


def _limits(tmp_path: Path, **local: str) -> BuildLimits:
    return BuildLimits.from_settings(Settings(home=tmp_path, local=local))


def test_a_root_servers_build_is_mapped_as_a_task_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    limits = _limits(tmp_path)
    assert limits.idmap == IdMap(65534, 65534, 1_000_000_000, 65536)
    assert (limits.memory_bytes, limits.cpus, limits.pids, limits.timeout) == (
        4 * 1024**3, 2.0, 4096, 3600.0,
    )  # fmt: skip
    # Without subordinate ids the build's root is still the task's user, alone.
    assert _limits(tmp_path, task_subids="").idmap == IdMap(65534, 65534, 0, 1)
    # task_user 0:0 is the operator's explicit choice of the host's root.
    assert _limits(tmp_path, task_user="0:0").idmap is None


def test_podman_build_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(confine, "_oci_runtime", lambda: "/usr/sbin/runc")
    limits = BuildLimits(2 * 1024**3, 1.5, 100, 60.0, IdMap(1000, 1001, 200000, 65536))
    box = Confinement(limits, tmp_path / "box")
    assert box.build_args() == [
        "--memory", f"{2 * 1024**3}b", "--memory-swap", f"{2 * 1024**3}b",
        "--cpu-period", "100000", "--cpu-quota", "150000",
        "--cap-drop", "all", "--cap-add", "CHOWN,DAC_OVERRIDE,FOWNER,FSETID,KILL,SETGID,SETUID",
        "--layers=false",
        "--userns-uid-map", "0:1000:1", "--userns-uid-map", "1:200000:65535",
        "--userns-gid-map", "0:1001:1", "--userns-gid-map", "1:200000:65535",
    ]  # fmt: skip
    alone = Confinement(BuildLimits(1024**3, 1.0, 100, 60.0, IdMap(7, 8, 0, 1)), tmp_path / "a")
    assert alone.build_args()[-4:] == ["--userns-uid-map", "0:7:1", "--userns-gid-map", "0:8:1"]
    box.write()
    assert box.global_args() == ["--runtime", str(tmp_path / "box" / "runtime")]
    assert (tmp_path / "box" / "runtime").stat().st_mode & 0o777 == 0o700
    compile((tmp_path / "box" / "runtime").read_text(), "runtime", "exec")
