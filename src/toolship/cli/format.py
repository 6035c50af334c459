"""How the CLI shows tasks to people — pure string shaping."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from toolship.timeutil import parse_rfc3339
from toolship.units import format_bytes, format_duration

__all__ = ["exit_code_of", "print_show", "ps_header", "ps_line"]

_COLUMNS = "{id:<18} {state:<14} {exit:>4}  {name:<20} {image:<30} {created}"


def exit_code_of(task: dict[str, Any]) -> int:
    """What ``toolship run`` exits with: the tool's code, or a code that says why not."""
    state = task.get("state")
    attempts = task.get("logs") or []
    codes = [ex.get("exit_code", 0) for ex in attempts[-1].get("logs", [])] if attempts else []
    if state == "COMPLETE":
        return 0
    if state == "EXECUTOR_ERROR":
        system = attempts[-1].get("system_logs", []) if attempts else []
        if any(" timed out after " in line for line in system):
            return 124  # as timeout(1) does
        failed = [c for c in codes if c != 0]
        return failed[-1] if failed and failed[-1] > 0 else 124
    if state == "CANCELED":
        return 130
    return 125


def ps_header() -> str:
    return _COLUMNS.format(
        id="ID", state="STATE", exit="EXIT", name="NAME", image="IMAGE", created="CREATED"
    )


def ps_line(task: dict[str, Any]) -> str:
    attempts = task.get("logs") or []
    codes = [ex.get("exit_code") for ex in attempts[-1].get("logs", [])] if attempts else []
    image = (task.get("executors") or [{}])[0].get("image", "")
    return _COLUMNS.format(
        id=task["id"],
        state=task["state"],
        exit="" if not codes else str(codes[-1]),
        name=(task.get("name") or "")[:20],
        image=image[:30],
        created=task.get("creation_time", "")[:19].replace("T", " "),
    )


def _duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    return format_duration((parse_rfc3339(end) - parse_rfc3339(start)).total_seconds())


def print_show(console: Console, details: dict[str, Any]) -> None:
    task = details["task"]
    p = console.print
    p(f"[bold]{task['id']}[/]  {escape(task.get('name') or '')}")
    p(f"  state      [bold]{task['state']}[/]")
    p(f"  created    {task.get('creation_time', '')}")
    runtime = details.get("runtime") or "?"
    note = "" if details.get("isolated", True) else "  [yellow](no isolation: ran on the host)[/]"
    p(f"  runtime    {runtime}{note}")
    res = task.get("resources") or {}
    params = res.get("backend_parameters") or {}
    bits = [f"{res['cpu_cores']} cpu" if "cpu_cores" in res else ""]
    bits.append(f"{res['ram_gb']:g} GiB memory" if "ram_gb" in res else "")
    bits.append(f"{res['disk_gb']:g} GiB disk" if "disk_gb" in res else "")
    bits.append("network" if params.get("network") == "true" else "no network")
    bits.append(f"timeout {params['timeout']}" if "timeout" in params else "")
    p(f"  resources  {', '.join(b for b in bits if b)}")
    if task.get("tags"):
        p("  tags       " + ", ".join(f"{k}={v}" for k, v in task["tags"].items()))
    for n, ex in enumerate(task["executors"]):
        p(f"  executor {n}: {escape(ex['image'])}  {escape(' '.join(ex['command']))}")
    for inp in task.get("inputs", []):
        src = inp.get("url") or "(inline content)"
        p(f"  input      {inp['path']} <- {escape(src)}")
    attempts = task.get("logs") or []
    for a, attempt in enumerate(attempts, start=1):
        span = _duration(attempt.get("start_time"), attempt.get("end_time"))
        p(f"  attempt {a}: {attempt.get('start_time', '')}  {span}")
        for n, ex in enumerate(attempt.get("logs", [])):
            took = _duration(ex.get("start_time"), ex.get("end_time"))
            p(f"    executor {n}: exit [bold]{ex['exit_code']}[/]  {took}")
        for o in attempt.get("outputs", []):
            size = format_bytes(int(o["size_bytes"]))
            p(f"    output   {o['path']} -> {escape(o['url'])}  ({size})")
        for line in attempt.get("system_logs", []):
            p(f"    [yellow]system:[/] {escape(line)}")
