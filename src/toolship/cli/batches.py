"""Batch commands: sweep, map, batch ls/show/wait/cancel, report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Unpack

import click
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table

from toolship.cli.context import Ctx
from toolship.cli.format import wire_json
from toolship.cli.services import split_ref
from toolship.cli.tasks import F, task_options
from toolship.client import Batch, Client, ServiceBatchArguments
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
from toolship.units import format_amount, format_bytes, format_duration

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


def _name_values(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    pairs = {}
    for text in values:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{text!r} must look like NAME=VALUE, e.g. top={{top}}")
        pairs[name] = value
    return pairs


_SERVICE_OPTIONS = [
    click.option(
        "--service",
        metavar="NAME[@VERSION]",
        help="Run a service of the catalog (its latest version, or NAME@VERSION) instead of "
        "IMAGE -- COMMAND; -w defaults to the service's own workdir.",
    ),
    click.option(
        "--in",
        "in_ports",
        multiple=True,
        metavar="PORT=URL",
        help="With --service: an input port's URL, local path or (string port) value.",
    ),
    click.option(
        "--set",
        "parameters",
        multiple=True,
        callback=_name_values,
        metavar="NAME=VALUE",
        help="With --service: a parameter of the service (checked for every member).",
    ),
    click.option(
        "--out",
        "out_ports",
        multiple=True,
        metavar="PORT=URL",
        help="With --service: where an output port's results go (a URL or a local path).",
    ),
]


def service_options(f: F) -> F:
    """--service and its ports and parameters: ``service run``'s --in and --out; --set for
    its parameters, since a sweep's --param is the grid."""
    for option in reversed(_SERVICE_OPTIONS):
        f = option(f)
    return f


class ServiceBatchOptions(BatchOptions, ServiceBatchArguments, total=False):
    """What sweep and map get from service_options, batch_options and task_options."""

    service: str | None
    port: str | None  # map's


def _service_of(
    ctx: click.Context, image: str | None, command: tuple[str, ...], options: ServiceBatchOptions
) -> str | None:
    """--service's NAME[@VERSION], or None for IMAGE -- COMMAND: then checked to be given,
    and the service's options checked not to be, and taken out of ``options``."""
    service = options.pop("service", None)
    if service is not None:
        if image is not None or command:
            raise click.UsageError(
                "--service runs the service's own image and command: leave IMAGE and COMMAND "
                f"out (got {' '.join([image or '', *command]).strip()!r})"
            )
        return service
    if image is None:
        raise click.UsageError(
            f"give IMAGE -- COMMAND, or --service NAME[@VERSION] "
            f"(toolship {ctx.info_name} --help shows both)"
        )
    given = {
        "--in": options.pop("in_ports", None),
        "--set": options.pop("parameters", None),
        "--out": options.pop("out_ports", None),
        "--port": options.pop("port", None),
    }
    if named := [option for option, value in given.items() if value]:
        raise click.UsageError(
            f"{', '.join(named)}: for a service's ports and parameters; add --service NAME, "
            "or with IMAGE -- COMMAND use -i/-o and {placeholders} in the command"
        )
    return None


def _service_members(
    ctx: click.Context, ref: str, options: ServiceBatchOptions
) -> tuple[str, bool, ServiceBatchArguments]:
    """(The service's name, --detach, the SDK's arguments): -w only when given, so the
    service's own workdir applies otherwise."""
    name, version = split_ref(ref)
    options["version"] = version
    detach = options.pop("detach", False)
    if ctx.get_parameter_source("workdir") is ParameterSource.DEFAULT:
        options["workdir"] = None
    args: ServiceBatchArguments = options
    return name, detach, args


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
    _show(_client(ctx).create_batch(request), detach)


def _show(created: Batch, detach: bool) -> None:
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
@click.argument("image", required=False)
@click.argument("command", nargs=-1)
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
@service_options
@batch_options
@task_options
@click.pass_context
def sweep(
    ctx: click.Context,
    /,
    image: str | None,
    command: tuple[str, ...],
    sweep_params: tuple[str, ...],
    params_file: Path | None,
    **options: Unpack[ServiceBatchOptions],
) -> None:
    """Run COMMAND once per parameter combination; {NAME} takes each member's value.

    Placeholders work in the command, --env values, --name and -i/-o paths and
    URLs.  A parameter named cpu (memory, nodes) also sets the member's --cpu
    (--memory, --nodes), so a sweep can measure how a tool scales.  Every member gets
    TOOLSHIP_ARRAY_INDEX and TOOLSHIP_ARRAY_SIZE.

    With --service NAME, each member is a run of that service instead: --in, --set
    (its parameters; --param stays the grid) and --out take {NAME} placeholders, and
    a swept NAME that is a parameter of the service sets it unless --set gives it.

    \b
    Examples:
      toolship sweep --param lr=0.1,0.01 --param width=100,200 IMG -- train {lr} {width}
      toolship sweep --params-file runs.csv -o 'out/*=s3://b/runs/{name}/' IMG -- tool {x}
      toolship sweep --service wordfreq --param top=5,50 --param book=a,b \\
          --in 'text=books/{book}.txt' --out 'counts=out/{book}-{top}.csv'
    """
    if sweep_params and params_file:
        raise click.UsageError("give --param NAME=V1,V2 (a grid) or --params-file, not both")
    if not sweep_params and not params_file:
        raise click.UsageError(
            "say what to sweep: --param NAME=V1,V2 (repeat for a grid) or --params-file FILE"
        )
    ref = _service_of(ctx, image, command, options)
    rows = grid(sweep_params) if sweep_params else read_params_file(params_file or "")
    if ref is not None:
        name, detach, args = _service_members(ctx, ref, options)
        _show(_client(ctx).sweep_service(name, rows, **args), detach)
        return
    request, detach = _take_batch(image or "", command, options)
    _submit(ctx, {**request, "params": rows}, detach)


@click.command(name="map", context_settings={"allow_interspersed_args": False})
@click.argument("image", required=False)
@click.argument("command", nargs=-1)
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
    "and writes to /work/out.  It runs in the map tasks' workdir, with their --content files.",
)
@service_options
@click.option(
    "--port",
    metavar="PORT",
    help="With --service: the directory input port each task's objects are staged into "
    "(default: the service's only one not given by --in).",
)
@batch_options
@task_options
@click.pass_context
def map_(
    ctx: click.Context,
    /,
    image: str | None,
    command: tuple[str, ...],
    over: str,
    to: str,
    chunk: int,
    reduce_image: str | None,
    reduce_command: str | None,
    **options: Unpack[ServiceBatchOptions],
) -> None:
    """Run COMMAND once per object matching --over (or per --chunk objects).

    Each task finds its objects in /work/in ({input} is the first, {inputs} all
    of them: one argument each where an argument is exactly {inputs}, else
    space-separated; also $TOOLSHIP_MAP_INPUTS) and writes its results to /work/out,
    which is delivered to --to URL/map/ITEM/.  With --reduce, one more task runs
    after every map task is COMPLETE, with all their outputs in /work/in (and
    their --content files).

    With --service NAME, each task is a run of that service instead: its objects are
    staged into the service's directory input port (--port names one), its only
    directory output port goes to --to URL/map/ITEM/ unless --out gives it, and
    {item}, {input} and {inputs} work in --in, --set and --out values.

    \b
    Examples:
      toolship map --over 's3://b/raw/*.segy' --to s3://b/index/ --chunk 5 \\
          --reduce IMG --reduce-command 'cat /work/in/*/* > /work/out/all.txt' \\
          IMG -- sh -c 'segy-index {inputs} > /work/out/index.txt'
      toolship map --over 's3://b/books/*.txt' --to s3://b/copies/ --service Clone \\
          --port 'Input Directory' --in 'Second Input=./common/'
    """
    if bool(reduce_image) != bool(reduce_command):
        raise click.UsageError("--reduce IMAGE and --reduce-command CMD go together")
    ref = _service_of(ctx, image, command, options)
    reduce = None
    if reduce_image and reduce_command:
        # The reduce runs where the members ran, with their runtime, network and size, and
        # their --content files: a map and its reduce are often two modes of one script.
        reduce = build_task(
            reduce_image,
            ["sh", "-c", reduce_command],
            name="reduce",
            content=options.get("content"),
            workdir=options.get("workdir"),
            runtime=options.get("runtime") or None,
            network=options.get("network", False),
            cpu=options.get("cpu") or None,
            memory=options.get("memory") or None,
        )
    if ref is not None:
        port = options.pop("port", None)
        name, detach, args = _service_members(ctx, ref, options)
        created = _client(ctx).map_service(
            name, over=over, to=to, chunk=chunk, port=port, reduce=reduce, **args
        )
        _show(created, detach)
        return
    request, detach = _take_batch(image or "", command, options)
    request["map"] = {"over": over, "to": to, "chunk": chunk}
    if reduce is not None:
        request["reduce"] = reduce
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
        f" · cost {format_amount(t.cost)} {data.currency}"
    )
    gpus = t.gpu_seconds is not None
    if gpus:
        out.print(
            f"  GPU time {_fmt(t.gpu_seconds, 's')} · busy {_fmt(t.gpu_busy_seconds, 's')}"
            f" · peak GPU memory {_fmt(t.gpu_memory_peak_bytes, 'b')}"
        )
    table = Table(box=None, pad_edge=False)
    columns = ["task", "params", "state", "cpus", "tries", "run", "wall", "cpu", "peak"]
    columns += ["gpus", "gpu time", "gpu peak"] if gpus else []
    for col in [*columns, f"cost {data.currency}"]:
        left = col in ("task", "params", "state")
        table.add_column(col, justify="left" if left else "right", no_wrap=col == "task")
    for m in data.members[:200]:
        params = " ".join(f"{k}={v}" for k, v in m.params.items())
        row = [
            m.id,
            params or (m.name or ""),
            m.state.value,
            str(m.cpus),
            str(m.attempts),
            _fmt(m.run_seconds, "s"),
            _fmt(m.wall_seconds, "s"),
            _fmt(m.cpu_seconds, "s"),
            _fmt(m.peak_memory_bytes, "b"),
        ]
        if gpus:
            row += [
                str(m.gpus),
                _fmt(m.gpu_seconds, "s"),
                _fmt(m.gpu_memory_peak_bytes, "b"),
            ]
        table.add_row(*row, format_amount(m.cost))
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
