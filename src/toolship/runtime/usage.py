"""What an attempt's containers used: CPU seconds and peak memory, from cgroup counters.

Each attempt's containers run under their own parent cgroup
(``--cgroup-parent /toolship/TASK-ATTEMPT``).  The kernel keeps charging a
parent for the CPU time and memory of its children, and the parent outlives
the containers (``--rm`` removes only theirs), so its counters still hold the
attempt's totals after the last container exits.  They include podman's
container monitor (a few MiB, milliseconds of CPU).  This needs root podman
with the cgroupfs manager (rootless podman and the systemd manager place
containers themselves); otherwise accounting is off and reports show wall
time only.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Usage",
    "accounting_available",
    "cgroup_name",
    "in_slurm_cgroup",
    "node_accounting",
    "read_usage",
    "remove_cgroup",
]

ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_seconds: float
    peak_memory_bytes: int


@functools.cache
def accounting_available(runtime: str) -> bool:
    if runtime != "podman" or os.geteuid() != 0 or shutil.which("podman") is None:
        return False
    try:
        manager = subprocess.run(
            ["podman", "info", "--format", "{{.Host.CgroupManager}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False
    return manager == "cgroupfs"


def node_accounting(runtime: str) -> bool:
    """Accounting on a Slurm compute node: as on the server's machine, unless Slurm keeps
    its jobs in cgroups of its own (task/cgroup, proctrack/cgroup).  Then a container put
    under ``/toolship`` would leave the job's cgroup and its limits, so it is not done."""
    try:
        mine = Path("/proc/self/cgroup").read_text()
    except OSError:
        return False
    return not in_slurm_cgroup(mine) and accounting_available(runtime)


def in_slurm_cgroup(proc_cgroup: str) -> bool:
    """Whether a process's ``/proc/PID/cgroup`` places it in a cgroup Slurm made
    (``/slurm/uid_0/job_7/step_0`` in v1, ``/system.slice/slurmstepd.scope/job_7/…`` in v2)."""
    return any("slurm" in line.split(":", 2)[-1] for line in proc_cgroup.splitlines())


def cgroup_name(task_id: str, attempt: int) -> str:
    return f"/toolship/{task_id}-{attempt}"


def _v2() -> bool:
    return (ROOT / "cgroup.controllers").exists()


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def read_usage(name: str) -> Usage | None:
    """The cgroup's totals, or None when it does not exist (accounting off, nothing ran)."""
    rel = name.lstrip("/")
    if _v2():
        stat = _read(ROOT / rel / "cpu.stat")
        peak = _read(ROOT / rel / "memory.peak")
        if stat is None:
            return None
        usec = next(
            (int(line.split()[1]) for line in stat.splitlines() if line.startswith("usage_usec")), 0
        )
        return Usage(usec / 1e6, int(peak) if peak and peak.strip().isdigit() else 0)
    cpu = _read(ROOT / "cpuacct" / rel / "cpuacct.usage")
    peak = _read(ROOT / "memory" / rel / "memory.max_usage_in_bytes")
    if cpu is None:
        return None
    return Usage(int(cpu) / 1e9, int(peak) if peak and peak.strip().isdigit() else 0)


def remove_cgroup(name: str) -> None:
    """Remove the (empty) cgroup and its leftover children in every hierarchy.

    Walked with ``os.walk`` (directory entries' types, no ``stat``): each cgroup holds
    dozens of control files, and stating them all cost ~10 ms of CPU per attempt.
    """
    rel = name.lstrip("/")
    for top in _hierarchies():
        for path, _dirs, _files in os.walk(top / rel, topdown=False):  # children first
            with contextlib.suppress(OSError):
                Path(path).rmdir()


@functools.cache
def _hierarchies() -> tuple[Path, ...]:
    if _v2():
        return (ROOT,)
    return tuple(p for p in ROOT.iterdir() if p.is_dir() and not p.is_symlink())
