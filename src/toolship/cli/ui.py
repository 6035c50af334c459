"""``toolship ui``: open the web UI logged in (a one-time link), or print its URL."""

from __future__ import annotations

import webbrowser

import click

from toolship.cli.context import Ctx

__all__ = ["register", "ui"]


@click.command()
@click.option(
    "--no-browser", is_flag=True, help="Print the link instead of opening it in a browser."
)
@click.pass_context
def ui(ctx: click.Context, no_browser: bool) -> None:
    """Open the web UI (tasks, batches, services, a new task) in your browser.

    Starts or reuses the local server as every command does (or uses --server),
    and asks it for a one-time login link: good once, for a minute, so your
    token never appears in a URL. Without a browser (an SSH session), or with
    --no-browser, the link is printed: open it on a machine that reaches the server.
    """
    link = ctx.ensure_object(Ctx).client.ui_link()
    if not no_browser and webbrowser.open(link):
        click.echo(f"opened the web UI in your browser: {link.split('/ui/', 1)[0]}/ui")
        return
    click.echo(f"open this link (good once, for a minute) to use the web UI:\n{link}")


def register(group: click.Group) -> None:
    group.add_command(ui)
