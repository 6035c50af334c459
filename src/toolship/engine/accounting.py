"""What tasks used and cost, and how a sweep scaled — pure, from stored task records.

Per attempt: ``wall_seconds`` (the attempt's start to end, staging included:
what the reservation lasted), ``run_seconds`` (the executors alone), and,
when the runtime measured them (TES ``logs[].metadata``), CPU seconds and
peak memory; for tasks with GPUs, GPU time (devices x executors' time) and,
where NVML sampled the devices, busy GPU time and peak GPU memory.  Cost is
reservation time * (cores * core-hour price + GiB * GiB-hour price + GPUs *
GPU-hour price), summed over attempts.

Scaling (for sweeps over ``cpu``/``cpus``/``nodes``): T(n) is the median run
time of the COMPLETE members with n; speed-up S(n) = T(b) * b / T(n) where b
is the smallest n swept (so S(1) = 1 when the sweep starts at 1), and
efficiency E(n) = S(n) / n.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from toolship.config import PriceSettings
from toolship.errors import InvalidRequest
from toolship.models import MemberReport, ReportTotals, ScalingPoint, TaskLog
from toolship.options import node_count
from toolship.states import TaskState
from toolship.timeutil import parse_rfc3339

__all__ = ["Member", "member_usage", "scaling", "scaling_key", "summarize"]

SCALING_KEYS = ("cpu", "cpus", "nodes")


def _span(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    return max(0.0, (parse_rfc3339(end) - parse_rfc3339(start)).total_seconds())


class _Sums:
    """GPU figures over a task's attempts (None: no attempt recorded any)."""

    def __init__(self) -> None:
        self.seconds: float | None = None
        self.busy: float | None = None
        self.peak: int | None = None

    def add(self, meta: Mapping[str, str]) -> None:
        if "toolship.gpu_seconds" in meta:
            self.seconds = (self.seconds or 0.0) + float(meta["toolship.gpu_seconds"])
        if "toolship.gpu_busy_seconds" in meta:
            self.busy = (self.busy or 0.0) + float(meta["toolship.gpu_busy_seconds"])
        if "toolship.gpu_memory_peak_bytes" in meta:
            self.peak = max(self.peak or 0, int(meta["toolship.gpu_memory_peak_bytes"]))


class Member(Protocol):
    """What accounting reads of a stored task (a ``db.TaskRow`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def state(self) -> TaskState: ...
    @property
    def logs(self) -> Sequence[TaskLog]: ...
    @property
    def cpus(self) -> int: ...
    @property
    def memory_gb(self) -> float: ...
    @property
    def gpus(self) -> int: ...
    @property
    def spec(self) -> dict[str, Any]: ...


def _nodes(spec: Mapping[str, Any]) -> int:
    """How many nodes the task reserved (each with its cores, memory and GPUs)."""
    params = (spec.get("resources") or {}).get("backend_parameters")
    try:
        return max(1, node_count(params) or 1)
    except InvalidRequest:  # admission refuses such a task; an old row may hold one
        return 1


def member_usage(row: Member, params: Mapping[str, str], prices: PriceSettings) -> MemberReport:
    """A member's times, use and cost: what it reserved on every node it ran on."""
    nodes = _nodes(row.spec)
    cpus, memory_gb, gpus = row.cpus * nodes, row.memory_gb * nodes, row.gpus * nodes
    logs = row.logs
    wall = run = 0.0
    cpu: float | None = None
    peak: int | None = None
    gpu = _Sums()
    attempts = 0
    starts: list[str] = []
    ends: list[str] = []
    for attempt in logs:
        if attempt.start_time:
            attempts += 1
            starts.append(attempt.start_time)
        if attempt.end_time:
            ends.append(attempt.end_time)
        wall += _span(attempt.start_time, attempt.end_time)
        run += sum(_span(e.start_time, e.end_time) for e in attempt.logs)
        meta = attempt.metadata or {}
        if "toolship.cpu_seconds" in meta:
            cpu = (cpu or 0.0) + float(meta["toolship.cpu_seconds"])
        if "toolship.peak_memory_bytes" in meta:
            peak = max(peak or 0, int(meta["toolship.peak_memory_bytes"]))
        gpu.add(meta)
    hourly = cpus * prices.core_hour + memory_gb * prices.gb_hour + gpus * prices.gpu_hour
    return MemberReport(
        id=row.id,
        name=row.name,
        state=row.state,
        params=dict(params),
        cpus=cpus,
        memory_gb=memory_gb,
        gpus=gpus,
        attempts=attempts,
        wall_seconds=round(wall, 6),
        run_seconds=round(run, 6),
        cpu_seconds=cpu,
        peak_memory_bytes=peak,
        gpu_seconds=gpu.seconds,
        gpu_busy_seconds=gpu.busy,
        gpu_memory_peak_bytes=gpu.peak,
        cost=_significant(wall / 3600 * hourly),
        start=min(starts) if starts else None,
        end=max(ends) if ends else None,
    )


def summarize(members: Sequence[MemberReport]) -> ReportTotals:
    starts = [m.start for m in members if m.start]
    ends = [m.end for m in members if m.end]
    cpu = [m.cpu_seconds for m in members if m.cpu_seconds is not None]
    peaks = [m.peak_memory_bytes for m in members if m.peak_memory_bytes is not None]
    gpu = [m.gpu_seconds for m in members if m.gpu_seconds is not None]
    busy = [m.gpu_busy_seconds for m in members if m.gpu_busy_seconds is not None]
    gpu_peaks = [m.gpu_memory_peak_bytes for m in members if m.gpu_memory_peak_bytes is not None]
    counts: dict[TaskState, int] = {}
    for m in members:
        counts[m.state] = counts.get(m.state, 0) + 1
    return ReportTotals(
        members=len(members),
        counts=counts,
        attempts=sum(m.attempts for m in members),
        wall_seconds=round(sum(m.wall_seconds for m in members), 6),
        run_seconds=round(sum(m.run_seconds for m in members), 6),
        cpu_seconds=round(sum(cpu), 3) if cpu else None,
        peak_memory_bytes=max(peaks) if peaks else None,
        gpu_seconds=round(sum(gpu), 3) if gpu else None,
        gpu_busy_seconds=round(sum(busy), 3) if busy else None,
        gpu_memory_peak_bytes=max(gpu_peaks) if gpu_peaks else None,
        cost=_significant(sum(m.cost for m in members)),
        turnaround_seconds=_span(min(starts), max(ends)) if starts and ends else None,
    )


def scaling_key(members: Sequence[MemberReport]) -> str | None:
    """The swept parameter that scales the tool, if the sweep has one with 2+ values."""
    for key in SCALING_KEYS:
        values = {m.params.get(key) for m in members if key in m.params}
        if len(values) >= 2:
            return key
    return None


def scaling(members: Sequence[MemberReport], key: str) -> list[ScalingPoint]:
    times: dict[int, list[float]] = {}
    for m in members:
        if m.state is not TaskState.COMPLETE or key not in m.params:
            continue
        try:
            n = int(float(m.params[key]))
        except ValueError:
            continue
        if n >= 1:
            times.setdefault(n, []).append(m.run_seconds)
    if not times:
        return []
    base = min(times)
    t_base = statistics.median(times[base])
    points = []
    for n in sorted(times):
        t = statistics.median(times[n])
        speedup = t_base * base / t if t > 0 else 0.0
        point = ScalingPoint(
            n=n, members=len(times[n]), run_seconds=t, speedup=speedup, efficiency=speedup / n
        )
        points.append(point)
    return points


def _significant(amount: float, digits: int = 6) -> float:
    """``amount`` to ``digits`` significant digits: a few seconds' cost is a tiny number
    whose digits matter (rounding to decimals left 0.000011 of 0.0000111…)."""
    return float(f"{amount:.{digits}g}")
