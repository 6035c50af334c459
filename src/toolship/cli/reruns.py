"""``toolship rerun``: a task again, exactly, and its outputs compared with the original's."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.markup import escape

from toolship.cli.context import Ctx
from toolship.models import View
from toolship.states import TaskState
from toolship.supply.reruns import Verification

__all__ = ["register"]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for value in values:
        path, eq, url = value.partition("=")
        if not eq or not path or not url:
            raise click.BadParameter(f"{value!r}: give PATH=URL, e.g. /out/a.txt=file:///tmp/a.txt")
        found[path] = url
    return found


@click.command()
@click.argument("task_id")
@click.option("--verify", is_flag=True, help="Compare every output's sha256 with the original's.")
@click.option(
    "--allow-changed-inputs",
    is_flag=True,
    help="Run on the inputs' current bytes instead of stopping when one changed.",
)
@click.option("--out-prefix", metavar="URL", help="Put every output under this URL folder.")
@click.option(
    "--out",
    "outputs",
    multiple=True,
    metavar="PATH=URL",
    help="Where the output at container PATH goes (repeatable).",
)
@click.option("-d", "--detach", is_flag=True, help="Print the new task's id and return at once.")
@click.option("--json", "as_json", is_flag=True, help="The rerun, its state and the comparison.")
@click.pass_context
def rerun(
    ctx: click.Context,
    task_id: str,
    verify: bool,
    allow_changed_inputs: bool,
    out_prefix: str | None,
    outputs: tuple[str, ...],
    detach: bool,
    as_json: bool,
) -> None:
    """Rerun TASK_ID exactly: the image digests it ran, its command, environment,
    resources and inputs, each input checked against its recorded sha256 first.

    \b
    Outputs go beside the original's, in a rerun-XXXXXXXX/ folder, unless
    --out-prefix or --out say where. Exit 0 when the rerun is COMPLETE (and, with
    --verify, every output is identical), 1 otherwise.
    """
    if detach and verify:
        raise click.UsageError("--verify waits for the rerun to end; leave out -d")
    client = ctx.ensure_object(Ctx).client
    info = client.rerun(
        task_id,
        allow_changed_inputs=allow_changed_inputs,
        out_prefix=out_prefix,
        outputs=_pairs(outputs),
    )
    if detach:
        click.echo(info.id)
        return
    if not as_json:
        checked = f", {info.inputs_checked} input files checked" if info.inputs_checked else ""
        err.print(f"[dim]task {info.id} reruns {task_id}{checked}[/]")
        for place in info.outputs:
            err.print(f"[dim]  {escape(place.path)} -> {escape(place.url)}[/]")
    state = client.wait(info.id)
    problems = []
    if state is not TaskState.COMPLETE:
        for attempt in (client.get(info.id, View.FULL).logs or [])[-1:]:
            problems += attempt.system_logs or []
    found = client.verify(info.id) if verify else None
    if as_json:
        doc = {
            "rerun": info.model_dump(mode="json"),
            "state": state.value,
            "system_logs": problems,
            "verification": None if found is None else found.model_dump(mode="json"),
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        for line in problems:
            err.print(f"[red]{escape(line)}[/]")
        err.print(f"[dim]task {info.id} ended {state}[/]")
        if found is not None:
            _show(found)
    ok = state is TaskState.COMPLETE and (found is None or found.all_identical)
    sys.exit(0 if ok else 1)


def _show(found: Verification) -> None:
    for word, paths in (
        ("identical", found.identical),
        ("differing", found.differing),
        ("missing", found.missing),
        ("added", found.added),
    ):
        for path in paths:
            out.print(f"{word:<10} {escape(path)}")
    if found.all_identical:
        out.print(f"all {len(found.identical)} output files identical to {found.against}'s")
    else:
        out.print(
            f"{len(found.differing)} differing, {len(found.missing)} missing, "
            f"{len(found.added)} added, {len(found.identical)} identical (against {found.against})"
        )


def register(group: click.Group) -> None:
    group.add_command(rerun)
