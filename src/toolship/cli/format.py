"""How the CLI shows tasks to people — pure string shaping."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from toolship.models import RankEnd, Resources, TaskDetails, TaskView
from toolship.states import TaskState
from toolship.timeutil import parse_rfc3339
from toolship.units import format_bytes, format_duration

__all__ = ["exit_code_of", "print_show", "ps_header", "ps_line", "wire_json"]

_COLUMNS = "{id:<18} {state:<14} {exit:>4}  {name:<20} {image:<30} {created}"


def wire_json(reply: BaseModel | Sequence[BaseModel], indent: int | None = None) -> str:
    """A reply as JSON with the keys the server sent, none added (what --json prints)."""
    if isinstance(reply, BaseModel):
        return json.dumps(reply.model_dump(mode="json", exclude_unset=True), indent=indent)
    return json.dumps([r.model_dump(mode="json", exclude_unset=True) for r in reply], indent=indent)


def exit_code_of(task: TaskView) -> int:
    """What ``toolship run`` exits with: the tool's code, or a code that says why not."""
    attempts = task.logs or []
    codes = [ex.exit_code for ex in attempts[-1].logs] if attempts else []
    if task.state is TaskState.COMPLETE:
        return 0
    if task.state is TaskState.EXECUTOR_ERROR:
        system = (attempts[-1].system_logs or []) if attempts else []
        if any(" timed out after " in line for line in system):
            return 124  # as timeout(1) does
        failed = [c for c in codes if c != 0]
        return failed[-1] if failed and failed[-1] > 0 else 124
    if task.state is TaskState.CANCELED:
        return 130
    return 125


def ps_header() -> str:
    return _COLUMNS.format(
        id="ID", state="STATE", exit="EXIT", name="NAME", image="IMAGE", created="CREATED"
    )


def ps_line(task: TaskView) -> str:
    attempts = task.logs or []
    codes = [ex.exit_code for ex in attempts[-1].logs] if attempts else []
    image = task.executors[0].image if task.executors else ""
    return _COLUMNS.format(
        id=task.id or "",
        state=task.state or TaskState.UNKNOWN,
        exit="" if not codes else str(codes[-1]),
        name=_clip(task.name or "", 20),
        image=_clip(image, 30),
        created=(task.creation_time or "")[:19].replace("T", " "),
    )


def _clip(text: str, width: int) -> str:
    """``text`` in ``width`` characters: a longer one keeps its start and its end (where
    names of a series and image tags differ) around an ellipsis."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return f"{text[:head]}…{text[len(text) - (width - 1 - head) :]}"


def _duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    return format_duration((parse_rfc3339(end) - parse_rfc3339(start)).total_seconds())


def _resources(res: Resources | None) -> str:
    params = (res.backend_parameters if res else None) or {}
    bits = [
        f"{res.cpu_cores} cpu" if res and res.cpu_cores is not None else "",
        f"{res.ram_gb:g} GiB memory" if res and res.ram_gb is not None else "",
        f"{res.disk_gb:g} GiB disk" if res and res.disk_gb is not None else "",
        "network" if params.get("network") == "true" else "no network",
        f"timeout {params['timeout']}" if "timeout" in params else "",
    ]
    return ", ".join(b for b in bits if b)


def _usage(meta: dict[str, str]) -> str:
    """What an attempt used, as its runtime measured it (TES logs[].metadata)."""
    parts = []
    if "toolship.cpu_seconds" in meta:
        parts.append(f"CPU {format_duration(float(meta['toolship.cpu_seconds']))}")
    if "toolship.peak_memory_bytes" in meta:
        parts.append(f"peak memory {format_bytes(int(meta['toolship.peak_memory_bytes']))}")
    if meta.get("toolship.gpus"):
        gpu = f"GPUs {meta['toolship.gpus']}: GPU time "
        gpu += format_duration(float(meta.get("toolship.gpu_seconds", "0")))
        if "toolship.gpu_busy_seconds" in meta:
            gpu += f", busy {format_duration(float(meta['toolship.gpu_busy_seconds']))}"
        if "toolship.gpu_memory_peak_bytes" in meta:
            gpu += f", peak GPU memory {format_bytes(int(meta['toolship.gpu_memory_peak_bytes']))}"
        parts.append(gpu)
    return " · ".join(parts)


def print_show(console: Console, details: TaskDetails) -> None:
    task = details.task
    p = console.print
    p(f"[bold]{task.id}[/]  {escape(task.name or '')}")
    p(f"  state      [bold]{task.state}[/]")
    p(f"  created    {task.creation_time or ''}")
    runtime = details.runtime or "?"
    note = "" if details.isolated else "  [yellow](no isolation: ran on the host)[/]"
    p(f"  runtime    {runtime}{note}")
    p(f"  resources  {_resources(details.resources or task.resources)}")
    if task.tags:
        p("  tags       " + ", ".join(f"{k}={v}" for k, v in task.tags.items()))
    for n, ex in enumerate(task.executors or []):
        p(f"  executor {n}: {escape(ex.image)}  {escape(' '.join(ex.command))}")
    for inp in task.inputs or []:
        src = inp.url or "(inline content)"
        p(f"  input      {inp.path} <- {escape(src)}")
    for a, attempt in enumerate(task.logs or [], start=1):
        span = _duration(attempt.start_time, attempt.end_time)
        p(f"  attempt {a}: {attempt.start_time or ''}  {span}")
        for n, log in enumerate(attempt.logs):
            took = _duration(log.start_time, log.end_time)
            p(f"    executor {n}: exit [bold]{log.exit_code}[/]  {took}")
        used = _usage(attempt.metadata or {})
        if used:
            p(f"    used       {used}")
        for o in attempt.outputs:
            size = format_bytes(int(o.size_bytes))
            p(f"    output   {o.path} -> {escape(o.url)}  ({size})")
        for line in attempt.system_logs or []:
            p(f"    [yellow]system:[/] {escape(line)}")
    _print_ranks(console, details.ranks, len(task.logs or []))


def _print_ranks(console: Console, ranks: list[RankEnd], attempt: int) -> None:
    """A multi-node task's ranks (the latest attempt's): node and exit, the failed named."""
    executors = sorted({r.executor for r in ranks})
    for executor in executors:
        rows = [r for r in ranks if r.executor == executor]
        of = f" of attempt {attempt}" if attempt else ""
        console.print(f"  ranks{of}, executor {executor}:")
        rank_w = max(4, *(len(str(r.rank)) for r in rows))
        node_w = max(4, *(len(r.node or "?") for r in rows))
        console.print(f"    {'rank':>{rank_w}}  {'node':<{node_w}}  exit")
        for r in rows:
            code = "-" if r.exit_code is None else str(r.exit_code)
            note = (
                "  [yellow]no exit code (killed, or never started)[/]"
                if r.exit_code is None
                else "  [red]failed[/]"
                if r.exit_code
                else ""
            )
            node = escape(f"{r.node or '?':<{node_w}}")
            console.print(f"    {r.rank:>{rank_w}}  {node}  {code:>4}{note}")
        for r in rows:
            if r.exit_code:
                console.print(
                    f"    [red]rank {r.rank} on {escape(r.node or '?')} failed with exit code "
                    f"{r.exit_code}[/]"
                )
