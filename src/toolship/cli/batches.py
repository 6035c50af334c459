"""Batch commands: sweep, map, batch ls/show/wait/cancel, report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Unpack

import click
from rich.console import Console
from rich.table import Table

from toolship.cli.context import Ctx
from toolship.cli.format import wire_json
from toolship.cli.tasks import F, task_options
from toolship.client import Batch, Client
from toolship.models import BatchInfo, BatchReport
from toolship.spec import (
    BatchArguments,
    MemberArguments,
    TaskArguments,
    batch_fields,
    build_task,
    grid,
    read_params_file,
)
from toolship.states import TaskState
from toolship.units import format_bytes, format_duration

__all__ = ["register"]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


def _client(ctx: click.Context) -> Client:
    obj: Ctx = ctx.ensure_object(Ctx)
    return obj.client


_BATCH_OPTIONS = [
    click.option(
        "--max-parallel",
        type=click.IntRange(min=1),
        help="Run at most N members at once.",
    ),
    click.option(
        "--batch-timeout",
        metavar="DURATION",
        help="Cancel members still unfinished this long after submission, e.g. 2h.",
    ),
    click.option("--batch-name", help="A name for the batch (ls shows it)."),
    click.option("-d", "--detach", is_flag=True, help="Print the batch id and return at once."),
]


def batch_options(f: F) -> F:
    """The batch's own options: the names of :class:`toolship.spec.BatchArguments`, and -d."""
    for option in reversed(_BATCH_OPTIONS):
        f = option(f)
    return f


class BatchOptions(TaskArguments, BatchArguments, total=False):
    """What sweep and map get from batch_options and task_options.

    --priority orders the batch and is also each member's own priority.
    """

    detach: bool


def _take_batch(
    image: str, command: tuple[str, ...], options: BatchOptions
) -> tuple[dict[str, object], bool]:
    """(The batch request's fields with its ``template``, --detach) from the options."""
    detach = options.pop("detach", False)
    priority = options.get("priority")
    batch = batch_fields(options)
    member: MemberArguments = options
    batch["template"] = build_task(image, _command(command), priority=priority, **member)
    return batch, detach


def _command(command: tuple[str, ...]) -> tuple[str, ...]:
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise click.UsageError("give the command to run after the image, e.g. IMAGE -- echo hi")
    return command


def _submit(ctx: click.Context, request: dict[str, object], detach: bool) -> None:
    created = _client(ctx).create_batch(request)
    if detach:
        click.echo(created.id)
        return
    err.print(f"[dim]batch {created.id}: {len(created.task_ids)} tasks[/]")
    info = _follow(created)
    _print_counts(info)
    sys.exit(0 if info.state is TaskState.COMPLETE else 1)


def _follow(batch: Batch) -> BatchInfo:
    if not err.is_terminal:
        return batch.wait()
    with err.status("submitted") as status:
        while True:
            info = batch.wait(timeout=1.0)
            status.update(", ".join(f"{n} {s.lower()}" for s, n in info.counts.items()))
            if not info.active:
                return info


def _print_counts(info: BatchInfo) -> None:
    counts = "  ".join(f"{state} {n}" for state, n in info.counts.items())
    click.echo(f"batch {info.id} {info.state}: {counts}")


@click.command(context_settings={"allow_interspersed_args": False})
@click.argument("image")
@click.argument("command", nargs=-1, required=True)
@click.option(
    "-p",
    "--param",
    "sweep_params",
    multiple=True,
    metavar="NAME=V1,V2,...",
    help="A swept parameter; several --param make the grid of all combinations.",
)
@click.option(
    "--params-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Explicit rows: CSV with a header line, or JSON Lines (one object per line).",
)
@batch_options
@task_options
@click.pass_context
def sweep(
    ctx: click.Context,
    /,
    image: str,
    command: tuple[str, ...],
    sweep_params: tuple[str, ...],
    params_file: Path | None,
    **options: Unpack[BatchOptions],
) -> None:
    """Run COMMAND once per parameter combination; {NAME} takes each member's value.

    Placeholders work in the command, --env values, --name and -i/-o paths and
    URLs.  A parameter named cpu (or memory) also sets the member's --cpu
    (--memory), so a sweep can measure how a tool scales.  Every member gets
    TOOLSHIP_ARRAY_INDEX and TOOLSHIP_ARRAY_SIZE.

    \b
    Examples:
      toolship sweep --param lr=0.1,0.01 --param width=100,200 IMG -- train {lr} {width}
      toolship sweep --params-file runs.csv -o 'out/*=s3://b/runs/{name}/' IMG -- tool {x}
    """
    if sweep_params and params_file:
        raise click.UsageError("give --param NAME=V1,V2 (a grid) or --params-file, not both")
    if not sweep_params and not params_file:
        raise click.UsageError(
            "say what to sweep: --param NAME=V1,V2 (repeat for a grid) or --params-file FILE"
        )
    rows = grid(sweep_params) if sweep_params else read_params_file(params_file or "")
    request, detach = _take_batch(image, command, options)
    _submit(ctx, {**request, "params": rows}, detach)


@click.command(name="map", context_settings={"allow_interspersed_args": False})
@click.argument("image")
@click.argument("command", nargs=-1, required=True)
@click.option(
    "--over",
    required=True,
    metavar="URL_PATTERN",
    help="The objects to map over, e.g. 's3://bucket/raw/*.segy' (quote it).",
)
@click.option(
    "--to",
    "to",
    required=True,
    metavar="URL/",
    help="Output prefix: each task's /work/out goes to URL/map/ITEM/, the reduce's to URL/reduce/.",
)
@click.option(
    "--chunk", type=click.IntRange(min=1), default=1, show_default=True, help="Objects per task."
)
@click.option("--reduce", "reduce_image", metavar="IMAGE", help="Image of the reduce task.")
@click.option(
    "--reduce-command",
    metavar="'SHELL COMMAND'",
    help="The reduce task's command (run with sh -c); it finds every map output in /work/in "
    "and writes to /work/out.",
)
@batch_options
@task_options
@click.pass_context
def map_(
    ctx: click.Context,
    /,
    image: str,
    command: tuple[str, ...],
    over: str,
    to: str,
    chunk: int,
    reduce_image: str | None,
    reduce_command: str | None,
    **options: Unpack[BatchOptions],
) -> None:
    """Run COMMAND once per object matching --over (or per --chunk objects).

    Each task finds its objects in /work/in ({input} is the first, {inputs} all
    of them; also $TOOLSHIP_MAP_INPUTS) and writes its results to /work/out,
    which is delivered to --to URL/map/ITEM/.  With --reduce, one more task runs
    after every map task is COMPLETE, with all their outputs in /work/in.

    \b
    Example:
      toolship map --over 's3://b/raw/*.segy' --to s3://b/index/ --chunk 5 \\
          --reduce IMG --reduce-command 'cat /work/in/*/* > /work/out/all.txt' \\
          IMG -- sh -c 'segy-index {inputs} > /work/out/index.txt'
    """
    if bool(reduce_image) != bool(reduce_command):
        raise click.UsageError("--reduce IMAGE and --reduce-command CMD go together")
    request, detach = _take_batch(image, command, options)
    request["map"] = {"over": over, "to": to, "chunk": chunk}
    if reduce_image and reduce_command:
        # The reduce runs where the members ran, with their runtime, network and size.
        request["reduce"] = build_task(
            reduce_image,
            ["sh", "-c", reduce_command],
            name="reduce",
            runtime=options.get("runtime") or None,
            network=options.get("network", False),
            cpu=options.get("cpu") or None,
            memory=options.get("memory") or None,
        )
    _submit(ctx, request, detach)


@click.group()
def batch() -> None:
    """Batches (sweeps and maps): list, show, wait, cancel."""


@batch.command(name="ls")
@click.option("-n", "--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def batch_ls(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The newest batches with their counts by state."""
    batches = _client(ctx).batches(limit)
    if as_json:
        click.echo(wire_json(batches, indent=2))
        return
    for b in batches:
        counts = " ".join(f"{s}:{n}" for s, n in b.counts.items())
        click.echo(
            f"{b.id}  {b.kind:<5} {b.size:>6}  {b.state:<15} {counts}  {b.name or ''}".rstrip()
        )


@batch.command(name="show")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def batch_show(ctx: click.Context, batch_id: str, as_json: bool) -> None:
    """A batch's size, state and counts by state."""
    info = _client(ctx).batch_info(batch_id)
    if as_json:
        click.echo(wire_json(info, indent=2))
        return
    _print_counts(info)
    shown = info.model_dump(exclude_unset=True, exclude_none=True)
    for key in ("kind", "size", "max_parallel", "priority", "timeout", "map", "creation_time"):
        if key in shown:
            click.echo(f"  {key:<14}{shown[key]}")


@batch.command(name="wait")
@click.argument("batch_id")
@click.option("--timeout", type=float, help="Give up after this many seconds (exit 124).")
@click.pass_context
def batch_wait(ctx: click.Context, batch_id: str, timeout: float | None) -> None:
    """Wait until no member is queued or running; exit 0 only if all are COMPLETE."""
    info = _client(ctx).batch(batch_id).wait(timeout)
    _print_counts(info)
    sys.exit(124 if info.active else 0 if info.state is TaskState.COMPLETE else 1)


@batch.command(name="cancel")
@click.argument("batch_id")
@click.pass_context
def batch_cancel(ctx: click.Context, batch_id: str) -> None:
    """Cancel every member that has not finished."""
    n = _client(ctx).cancel_batch(batch_id)
    click.echo(f"batch {batch_id}: cancelled {n} unfinished tasks")


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "s":
        return format_duration(value) if value >= 60 else f"{value:.2f}s"
    if kind == "b":
        return format_bytes(int(value))
    return f"{value:.4g}"


@click.command()
@click.argument("batch_id")
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the charts (default: BATCH_ID.png).",
)
@click.option("--no-png", is_flag=True, help="Print the figures only.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.pass_context
def report(
    ctx: click.Context, batch_id: str, png: Path | None, no_png: bool, as_json: bool
) -> None:
    """Totals, per-task usage and cost of a batch; speed-up and efficiency of a scaling sweep.

    Writes a PNG with per-task wall time, cost against turn-around time and, for
    a sweep over cpu/nodes, speed-up T1/Tn and efficiency curves (needs
    matplotlib: pip install 'toolship[report]').
    """
    data = _client(ctx).batch_report(batch_id)
    if as_json:
        click.echo(wire_json(data, indent=2))
    else:
        _print_report(data)
    if no_png:
        return
    from toolship.cli.charts import write_report_png

    target = png or Path(f"{batch_id}.png")
    write_report_png(data, target)
    err.print(f"wrote {target}")


def _print_report(data: BatchReport) -> None:
    out = Console(highlight=False, width=max(Console().width, 132))
    t, b = data.totals, data.batch
    out.print(f"[bold]batch {b.id}[/] ({b.kind}, {b.size} tasks): {b.state}")
    out.print(
        f"  wall {_fmt(t.wall_seconds, 's')} in {t.attempts} attempts · run "
        f"{_fmt(t.run_seconds, 's')} · CPU {_fmt(t.cpu_seconds, 's')} · peak memory "
        f"{_fmt(t.peak_memory_bytes, 'b')} · turn-around {_fmt(t.turnaround_seconds, 's')}"
        f" · cost {t.cost:.4g} {data.currency}"
    )
    table = Table(box=None, pad_edge=False)
    for col in ("task", "params", "state", "cpus", "tries", "run", "wall", "cpu", "peak", "cost"):
        left = col in ("task", "params", "state")
        table.add_column(col, justify="left" if left else "right", no_wrap=col == "task")
    for m in data.members[:200]:
        params = " ".join(f"{k}={v}" for k, v in m.params.items())
        table.add_row(
            m.id,
            params or (m.name or ""),
            m.state.value,
            str(m.cpus),
            str(m.attempts),
            _fmt(m.run_seconds, "s"),
            _fmt(m.wall_seconds, "s"),
            _fmt(m.cpu_seconds, "s"),
            _fmt(m.peak_memory_bytes, "b"),
            f"{m.cost:.4g}",
        )
    out.print(table)
    if len(data.members) > 200:
        out.print(f"  … and {len(data.members) - 200} more (--json for all)")
    scaling = data.scaling
    if scaling:
        out.print(f"[bold]scaling over {scaling.parameter}[/] (median run time of COMPLETE tasks)")
        for p in scaling.points:
            out.print(
                f"  {scaling.parameter}={p.n:<4} T={p.run_seconds:.2f}s  "
                f"speed-up {p.speedup:.2f}  efficiency {p.efficiency:.0%}"
            )


def register(group: click.Group) -> None:
    for command in (sweep, map_, batch, report):
        group.add_command(command)
