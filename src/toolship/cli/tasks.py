"""Task commands: run, ps, show, logs, wait, cancel."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, NoReturn, TypeVar, Unpack

import click
from rich.console import Console
from rich.markup import escape

from toolship.cli.context import Ctx
from toolship.cli.format import exit_code_of, print_show, ps_header, ps_line, wire_json
from toolship.client import Client, Task
from toolship.errors import ToolshipError
from toolship.models import TaskView, View
from toolship.runtime import known_runtimes
from toolship.spec import DEFAULT_WORKDIR, TaskArguments, build_task
from toolship.states import ACTIVE_STATES, FINAL_STATES, TaskState
from toolship.units import format_bytes

__all__ = ["register"]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., object])


def _obj(ctx: click.Context) -> Ctx:
    obj: Ctx = ctx.ensure_object(Ctx)
    return obj


_TASK_OPTIONS = [
    click.option(
        "-i",
        "--input",
        "inputs",
        multiple=True,
        metavar="PATH=URL",
        help="Stage URL (or local path) in at PATH; a URL ending in / is a directory.",
    ),
    click.option(
        "-o",
        "--output",
        "outputs",
        multiple=True,
        metavar="PATH=URL",
        help="Deliver PATH to URL afterwards; with wildcards in PATH, URL must end in /.",
    ),
    click.option(
        "--sync",
        metavar="URL/",
        help="Stage this folder into the workdir first; afterwards upload what the workdir "
        "holds back to it (new and changed files only).",
    ),
    click.option(
        "--content",
        multiple=True,
        metavar="PATH=TEXT|@FILE",
        help="Small inline input: the text itself, or @FILE to read it from a local file.",
    ),
    click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Environment variable."),
    click.option(
        "-w",
        "--workdir",
        default=DEFAULT_WORKDIR,
        show_default=True,
        help="Working directory inside the container (writable; relative PATHs start here).",
    ),
    click.option(
        "--volume",
        "volumes",
        multiple=True,
        metavar="PATH",
        help="Empty writable directory shared by the executors.",
    ),
    click.option("--cpu", type=click.IntRange(min=1), help="CPU cores (reserved and enforced)."),
    click.option("--memory", metavar="SIZE", help="Memory limit, e.g. 512M, 2G (enforced)."),
    click.option(
        "--disk",
        metavar="SIZE",
        help="Disk space the task needs, e.g. 10G (checked against free space; not a quota).",
    ),
    click.option("--timeout", metavar="DURATION", help="Kill the tool after e.g. 90s, 30m, 2h."),
    click.option(
        "--writable-inputs",
        is_flag=True,
        help="Copy local inputs into the task instead of mounting them read-only.",
    ),
    click.option("--network", is_flag=True, help="Give the container a network (off by default)."),
    click.option("--name", help="Task name (ps --name filters by prefix)."),
    click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag, repeatable."),
    click.option(
        "--runtime",
        type=click.Choice(known_runtimes()),
        help="podman (default), docker, or process (on the host, no isolation).",
    ),
    click.option("--priority", type=int, help="Higher starts first (default 0)."),
    click.option(
        "--retries",
        type=click.IntRange(0, 100),
        help="Try a failed task again up to N more times (see --retry-on).",
    ),
    click.option(
        "--retry-on",
        metavar="WHAT",
        help="What is retried: system-error (default), oom, exit:CODE[,CODE]; comma-separated.",
    ),
    click.option(
        "--after",
        multiple=True,
        metavar="TASK_ID",
        help="Start only after this task is COMPLETE (repeatable); fail if it fails.",
    ),
    click.option("--gpus", type=click.IntRange(min=0), help="GPUs (per node)."),
    click.option(
        "--nodes",
        type=click.IntRange(min=1),
        help="Run on N nodes, one rank each (Slurm: one job of N nodes; local: N ranks here). "
        "Each rank sees TOOLSHIP_NODE_RANK, TOOLSHIP_NUM_NODES, TOOLSHIP_MAIN_ADDR, "
        "TOOLSHIP_HOSTFILE (and RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). An attached run "
        "shows every rank's lines prefixed with the rank ('1: …'); show lists each rank's "
        "node and exit code.",
    ),
    click.option(
        "-b",
        "--backend-param",
        "params",
        multiple=True,
        metavar="KEY=VALUE",
        help="Backend parameter, e.g. partition=gpu, account=lab, qos=long, constraint=ib "
        "(the server's service-info lists them).",
    ),
]


def task_options(f: F) -> F:
    """The options that describe one task (shared by run, sweep and map).

    Their names are the task arguments' (:class:`toolship.spec.TaskArguments`);
    tests/unit/test_spec.py fails if the two drift apart.
    """
    for option in reversed(_TASK_OPTIONS):
        f = option(f)
    return f


@click.command(context_settings={"allow_interspersed_args": False})
@click.argument("image")
@click.argument("command", nargs=-1, required=True)
@task_options
@click.option(
    "--cache",
    is_flag=True,
    help="Answer from an earlier COMPLETE task with the same exact key (image digest, "
    "command, env, input bytes) when its outputs are intact; else run, and store the key.",
)
@click.option("-d", "--detach", is_flag=True, help="Print the task id and return at once.")
@click.pass_context
def run(
    ctx: click.Context,
    /,
    image: str,
    command: tuple[str, ...],
    detach: bool,
    **options: Unpack[TaskArguments],
) -> None:
    """Run COMMAND in IMAGE as a task; stream its output and exit with its exit code.

    \b
    Examples:
      toolship run localhost/toolship-busybox -- sh -c 'echo hi'
      toolship run IMAGE -i data/=./data/ -o 'out/*.png=./results/' -- tool data out
    """
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise click.UsageError("give the command to run after the image, e.g. IMAGE -- echo hi")
    task_doc = build_task(image, command, **options)
    client = _obj(ctx).client
    task = client.create(task_doc)
    if detach:
        click.echo(task.id)
        return
    attach(client, task)


def attach(client: Client, task: Task) -> NoReturn:
    """Show the task's start, stream its output, and exit with its exit code (Ctrl-C
    cancels it): what ``toolship run`` and ``toolship service run`` do without -d."""
    err.print(f"[dim]task {task.id}[/]")
    if err.is_terminal:
        _show_start(client, task.id)
    streams = [
        threading.Thread(target=_pump, args=(client, task.id, s, f), daemon=True)
        for s, f in (("stdout", sys.stdout.buffer), ("stderr", sys.stderr.buffer))
    ]
    for t in streams:
        t.start()
    try:
        state = task.wait()
    except KeyboardInterrupt:
        err.print(f"\n[yellow]cancelling task {task.id}…[/]")
        client.cancel(task.id)
        state = task.wait(timeout=30)
    for t in streams:
        t.join(timeout=10)
    info = client.details(task.id).task
    code = exit_code_of(info)
    if state is not TaskState.COMPLETE:
        for attempt in (info.logs or [])[-1:]:
            for line in attempt.system_logs or []:
                err.print(f"[red]{escape(line)}[/]")
        err.print(f"[dim]task {task.id} ended {state} (exit {code})[/]")
    sys.exit(code)


_PHASES = {
    TaskState.QUEUED: "queued, waiting for free cores/memory",
    TaskState.INITIALIZING: "staging inputs",
}


def _show_start(client: Client, task_id: str) -> None:
    """A live status line (terminals only) until the tool starts: queued, then staging."""
    started = time.monotonic()
    with err.status("submitted") as status:
        while True:
            details = client.details(task_id)
            state = details.task.state
            if state not in _PHASES:
                return
            staged = details.staged
            moved = (
                f": {staged.files} files, {format_bytes(staged.bytes)}"
                if state is TaskState.INITIALIZING and staged
                else ""
            )
            status.update(f"{_PHASES[state]}{moved} ({time.monotonic() - started:.0f}s)")
            time.sleep(0.25)


def _pump(client: Client, task_id: str, stream: str, sink: BinaryIO) -> None:
    try:
        for chunk in client.logs(task_id, stream=stream, follow=True, attempt=1, all_ranks=True):
            sink.write(chunk)
            sink.flush()
    except ToolshipError as exc:
        err.print(f"[yellow]log stream interrupted: {escape(exc.message)}[/]")


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Include finished tasks.")
@click.option(
    "--state",
    type=click.Choice([s.value for s in TaskState], case_sensitive=False),
    help="Only tasks in this state.",
)
@click.option("--name", help="Only tasks whose name starts with this.")
@click.option("--tag", "tags", multiple=True, metavar="KEY[=VALUE]", help="Only tasks with tag.")
@click.option(
    "--batch",
    metavar="BATCH_ID",
    help="Only the members of this batch (all states), after its counts by state.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON (an array of TES BASIC tasks).")
@click.option("-n", "--limit", type=click.IntRange(min=1), help="At most this many tasks.")
@click.pass_context
def ps(
    ctx: click.Context,
    show_all: bool,
    state: str | None,
    name: str | None,
    tags: tuple[str, ...],
    batch: str | None,
    as_json: bool,
    limit: int | None,
) -> None:
    """List tasks, newest first (running and queued ones unless --all, --state or --batch)."""
    client = _obj(ctx).client
    active: list[str | None] = [s.value for s in TaskState if s in ACTIVE_STATES]
    states: list[str | None] = [state.upper()] if state else ([None] if show_all else active)
    if batch:
        info = client.batch_info(batch)
        tags = (*tags, f"toolship.batch={batch}")
        states = [state.upper()] if state else [None]
        if not as_json:
            counts = "  ".join(f"{k} {v}" for k, v in info.counts.items())
            click.echo(f"batch {batch} ({info.kind}, {info.size} tasks): {info.state}")
            click.echo(f"  {counts}")

    def rows() -> Iterator[TaskView]:
        count = 0
        for st in states:
            for t in client.tasks(state=st, name=name, tags=list(tags), view=View.BASIC):
                if limit is not None and count >= limit:
                    return
                count += 1
                yield t

    if as_json:
        # Streamed element by element so 100 000 tasks need no more memory than one page.
        sys.stdout.write("[")
        for i, t in enumerate(rows()):
            sys.stdout.write(("," if i else "") + "\n" + wire_json(t))
        sys.stdout.write("\n]\n")
        return
    click.echo(click.style(ps_header(), bold=True))
    for t in rows():
        click.echo(ps_line(t))


@click.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="The FULL TES task plus toolship details.")
@click.pass_context
def show(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """Everything about a task: state, executors and exit codes, outputs, system logs."""
    details = _obj(ctx).client.details(task_id)
    if as_json:
        click.echo(wire_json(details, indent=2))
        return
    print_show(out, details)


@click.command()
@click.argument("task_id")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming until the task ends.")
@click.option("--stderr", "stderr", is_flag=True, help="Show stderr instead of stdout.")
@click.option("--executor", type=click.IntRange(min=0), help="Only this executor (0-based).")
@click.option(
    "--attempt",
    type=click.IntRange(min=1),
    help="Start with this attempt of a retried task (1 = the first; default: the latest).",
)
@click.option(
    "--rank",
    type=click.IntRange(min=0),
    help="Of a multi-node task (--nodes N), this rank's output (0-based; default: rank 0).",
)
@click.option(
    "--all-ranks",
    is_flag=True,
    help="Of a multi-node task, every rank's output, each line prefixed with its rank "
    "('1: …', as srun --label does).",
)
@click.pass_context
def logs(
    ctx: click.Context,
    task_id: str,
    follow: bool,
    stderr: bool,
    executor: int | None,
    attempt: int | None,
    rank: int | None,
    all_ranks: bool,
) -> None:
    """Print a task's full stdout (or --stderr) of its latest attempt."""
    if rank is not None and all_ranks:
        raise click.UsageError("give --rank R (one rank's output) or --all-ranks, not both")
    sink = sys.stdout.buffer
    for chunk in _obj(ctx).client.logs(
        task_id,
        stream="stderr" if stderr else "stdout",
        executor=executor,
        follow=follow,
        attempt=attempt,
        rank=rank,
        all_ranks=all_ranks,
    ):
        sink.write(chunk)
        sink.flush()


@click.command()
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--timeout", type=float, help="Give up after this many seconds (exit 124).")
@click.pass_context
def wait(ctx: click.Context, task_ids: tuple[str, ...], timeout: float | None) -> None:
    """Wait until tasks are final; exit 0 only if all are COMPLETE."""
    client = _obj(ctx).client
    worst = 0
    for task_id in task_ids:
        state = client.wait(task_id, timeout=timeout)
        click.echo(f"{task_id} {state}")
        if state not in FINAL_STATES:
            worst = 124
        elif state is not TaskState.COMPLETE and worst == 0:
            worst = 1
    sys.exit(worst)


@click.command()
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--no-wait", is_flag=True, help="Return at once instead of waiting until stopped.")
@click.pass_context
def cancel(ctx: click.Context, task_ids: tuple[str, ...], no_wait: bool) -> None:
    """Cancel tasks and wait until they have stopped (a finished task is left as it is)."""
    client = _obj(ctx).client
    for task_id in task_ids:
        client.cancel(task_id)
    for task_id in task_ids:
        state = client.get(task_id).state if no_wait else client.wait(task_id, timeout=30)
        click.echo(f"{task_id} {state}")


def register(group: click.Group) -> None:
    for command in (run, ps, show, logs, wait, cancel):
        group.add_command(command)
