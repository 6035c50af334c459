"""``toolship cache ls|rm``: the result cache's stored keys (``toolship run --cache`` uses it)."""

from __future__ import annotations

import click

from toolship.cli.context import Ctx
from toolship.cli.format import wire_json

__all__ = ["register"]


@click.group()
def cache() -> None:
    """The result cache: keys of COMPLETE tasks that `run --cache` answers from."""


@cache.command(name="ls")
@click.option("-n", "--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The entries as JSON.")
@click.pass_context
def cache_ls(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The stored keys, newest first: key, when stored, the task that answers it."""
    entries = ctx.ensure_object(Ctx).client.cache_entries(limit)
    if as_json:
        click.echo(wire_json(entries, indent=2))
        return
    for e in entries:
        click.echo(f"{e.key}  {e.created}  {e.task_id}  {e.task_name or ''}".rstrip())


@cache.command(name="rm")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@click.pass_context
def cache_rm(ctx: click.Context, keys: tuple[str, ...]) -> None:
    """Forget KEYs: later tasks with them run again (tasks and outputs stay)."""
    client = ctx.ensure_object(Ctx).client
    for key in keys:
        client.forget_cache(key)
        click.echo(f"forgot {key}")


def register(group: click.Group) -> None:
    group.add_command(cache)
