"""``toolship quota [USER]``: limits, what runs and waits against them, fair-share usage."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from toolship.cli.context import Ctx
from toolship.cli.format import wire_json
from toolship.models import QuotaLimits

__all__ = ["quota", "register"]


def _limit(value: float | None) -> str:
    return "no limit" if value is None else f"{value:g}"


def _rows(table: Table, who: str, q: QuotaLimits) -> None:
    u = q.use
    for what, use, limit in (
        ("running cores", u.running_cpus, q.running_cpus),
        ("running memory (GB)", u.running_memory_gb, q.running_memory_gb),
        ("running GPUs", u.running_gpus, q.running_gpus),
        ("queued tasks", u.queued_tasks, q.queued_tasks),
        ("batch size", None, q.batch_size),
    ):
        table.add_row(who, what, "" if use is None else f"{use:g}", _limit(limit))
        who = ""


@click.command()
@click.argument("user", required=False)
@click.option("--json", "as_json", is_flag=True, help="The server's answer as JSON.")
@click.pass_context
def quota(ctx: click.Context, user: str | None, as_json: bool) -> None:
    """Your quotas and what counts against them now (an admin may name a USER)."""
    report = ctx.ensure_object(Ctx).client.quota(user)
    if as_json:
        click.echo(wire_json(report, indent=2))
        return
    table = Table("who", "what", "use", "limit")
    _rows(table, f"user {report.user.name}", report.user)
    if report.group is not None:
        _rows(table, f"group {report.group.name}", report.group)
    console = Console()
    console.print(table)
    console.print(f"limits from: {report.user.setting}", highlight=False)
    fs = report.fair_share
    if fs.on:
        console.print(
            f"fair share: usage {fs.usage_core_seconds:g} core-seconds (half-life "
            f"{fs.half_life_hours:g} h), weight {fs.weight:g}",
            highlight=False,
        )
    else:
        console.print("fair share: off (first come, first served)", highlight=False)


def register(group: click.Group) -> None:
    group.add_command(quota)
