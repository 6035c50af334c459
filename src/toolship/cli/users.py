"""``toolship user add|ls|disable|enable|token new|token revoke``, ``toolship events`` and
``toolship whoami``: the users of a server, their tokens, and who did what."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from toolship.cli.context import Ctx
from toolship.cli.format import wire_json
from toolship.models import CreatedUser

__all__ = ["register"]

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

ROLES = ("viewer", "user", "maintainer", "admin")


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column)
    return table


def _show_token(created: CreatedUser, what: str) -> None:
    """The token alone on stdout (``TOKEN=$(toolship user add NAME)``), the rest on stderr."""
    err.print(
        f"{what}; token {created.token.id} is shown this once (the server keeps only its "
        "sha256), keep it:"
    )
    click.echo(created.token.token)


@click.group()
def user() -> None:
    """A server's users and their tokens (admins only).

    Roles: viewers read what they may see, users also run tasks, maintainers also
    build and deprecate services, admins see and manage everything.
    """


@user.command(name="add")
@click.argument("name")
@click.option(
    "--role", type=click.Choice(ROLES), default="user", show_default=True, help="What it may do."
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="G",
    help="A group it belongs to (repeatable; the first is the one its tasks count against).",
)
@click.pass_context
def user_add(ctx: click.Context, name: str, role: str, groups: tuple[str, ...]) -> None:
    """Add user NAME and print its first token (shown once)."""
    created = ctx.ensure_object(Ctx).client.add_user(name, role, groups)
    in_groups = f", groups {', '.join(created.user.groups)}" if created.user.groups else ""
    _show_token(created, f"added {escape(name)} ({created.user.role}{escape(in_groups)})")


@user.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="The users and their tokens as JSON.")
@click.pass_context
def user_ls(ctx: click.Context, as_json: bool) -> None:
    """Every user: role, groups, state and tokens (ids and last use, never the tokens)."""
    users = ctx.ensure_object(Ctx).client.users()
    if as_json:
        click.echo(wire_json(users, indent=2))
        return
    if not users:
        err.print("no users yet: add one with `toolship user add NAME --role ROLE`")
        return
    table = _table("USER", "ROLE", "GROUPS", "STATE", "TOKEN", "CREATED", "LAST USED")
    for u in users:
        state = "disabled" if u.disabled else "enabled"
        cells = [escape(u.name), u.role, escape(",".join(u.groups)), state]
        if not u.tokens:
            table.add_row(*cells, "", u.created, "")
        for t in u.tokens:  # one line per token, the user's cells on the first
            shown = f"{t.id} (revoked)" if t.revoked else t.id
            table.add_row(*cells, shown, t.created, t.last_used or "never")
            cells = [""] * 4
    out.print(table)


@user.command(name="disable")
@click.argument("name")
@click.pass_context
def user_disable(ctx: click.Context, name: str) -> None:
    """Refuse NAME's tokens from now on (its tasks and records stay)."""
    ctx.ensure_object(Ctx).client.disable_user(name)
    click.echo(f"disabled {name}: its tokens are refused (`toolship user enable {name}` undoes)")


@user.command(name="enable")
@click.argument("name")
@click.pass_context
def user_enable(ctx: click.Context, name: str) -> None:
    """Accept NAME's tokens that are not revoked again."""
    ctx.ensure_object(Ctx).client.enable_user(name)
    click.echo(f"enabled {name}")


@user.group()
def token() -> None:
    """Users' tokens: make another, revoke one."""


@token.command(name="new")
@click.argument("name")
@click.pass_context
def token_new(ctx: click.Context, name: str) -> None:
    """Make another token for NAME and print it (shown once)."""
    created = ctx.ensure_object(Ctx).client.new_token(name)
    _show_token(created, f"a new token for {escape(name)}")


@token.command(name="revoke")
@click.argument("token_id", metavar="ID")
@click.pass_context
def token_revoke(ctx: click.Context, token_id: str) -> None:
    """Refuse token ID from now on (ids: `toolship user ls`)."""
    revoked = ctx.ensure_object(Ctx).client.revoke_token(token_id)
    click.echo(f"revoked token {revoked.id} of {revoked.user}")


@click.command()
@click.option("--user", "actor", metavar="USER", help="Only what USER did.")
@click.option(
    "--action", metavar="A", help="Only this action (task.create) or family (task, user, login)."
)
@click.option("--target", metavar="T", help="Only on this task, batch, user or token.")
@click.option("--since", metavar="TIME", help="Only from TIME on (RFC 3339: 2026-01-31T12:00Z).")
@click.option("-n", "--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The events as JSON.")
@click.pass_context
def events(
    ctx: click.Context,
    actor: str | None,
    action: str | None,
    target: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Who did what, newest first: creates, cancels, builds, deprecations, user and token
    changes, logins with the client's address (admins only)."""
    found = list(
        ctx.ensure_object(Ctx).client.events(
            actor=actor, action=action, target=target, since=since, limit=limit
        )
    )
    if as_json:
        click.echo(wire_json(found, indent=2))
        return
    table = _table("TIME", "USER", "ACTION", "TARGET", "ADDRESS", "DETAIL")
    for e in found:
        table.add_row(
            e.time, escape(e.actor), e.action, escape(e.target), e.address, escape(e.detail)
        )
    out.print(table)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The answer as JSON.")
@click.pass_context
def whoami(ctx: click.Context, as_json: bool) -> None:
    """Who the server takes you for: name, role, groups, and how it knows."""
    me = ctx.ensure_object(Ctx).client.whoami()
    if as_json:
        click.echo(wire_json(me, indent=2))
        return
    groups = f" groups {','.join(me.groups)}" if me.groups else ""
    click.echo(f"{me.name} ({me.role}{groups}; via {me.via})")


def register(group: click.Group) -> None:
    group.add_command(user)
    group.add_command(events)
    group.add_command(whoami)
