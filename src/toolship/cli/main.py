"""``toolship``: the command group, server commands, and error reporting."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from toolship import __version__
from toolship.cli import (
    audit,
    batches,
    cache,
    provenance,
    quota,
    reruns,
    sboms,
    services,
    tasks,
    ui,
    users,
)
from toolship.cli.context import Ctx
from toolship.errors import ToolshipError

__all__ = ["cli", "main"]

err = Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="toolship")
@click.option(
    "--server",
    envvar="TOOLSHIP_SERVER",
    metavar="URL",
    help="toolship server to use. Default: start or reuse a local one (TOOLSHIP_SERVER).",
)
@click.option(
    "--token", envvar="TOOLSHIP_TOKEN", help="Bearer token for --server (TOOLSHIP_TOKEN)."
)
@click.pass_context
def cli(ctx: click.Context, server: str | None, token: str | None) -> None:
    """Run containerized tools next to the data.

    With no --server, toolship starts (or reuses) a local server in the
    background: SQLite in TOOLSHIP_HOME (default ~/.local/share/toolship),
    tasks run with podman on this machine.
    """
    ctx.obj = Ctx(server=server, token=token)


@cli.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8000; 0 picks a free one).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (also TOOLSHIP_CONFIG).",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "slurm"]),
    help="Where tasks run: this machine (default) or a Slurm cluster (see [slurm] settings).",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Serve an address other hosts reach with no authentication at all (no token file, "
    "users or OIDC): only behind a proxy that authenticates every request "
    "(server.allow_unauthenticated).",
)
@click.option("--embedded", is_flag=True, hidden=True)
def serve(
    host: str | None,
    port: int | None,
    config_file: Path | None,
    backend: str | None,
    insecure_no_auth: bool,
    embedded: bool,
) -> None:
    """Run the toolship server in the foreground (TES API at /ga4gh/tes/v1).

    With --backend slurm each task runs as a Slurm batch job whose script starts
    `toolship worker` on the compute node; the nodes reach this server at
    slurm.server_url (default: the address it listens on).
    """
    import logging

    from toolship.config import load_settings
    from toolship.server import serve as run_server

    settings = load_settings(config_file)
    if embedded:
        host, port = "127.0.0.1", 0
    listen = settings.server
    if host:
        listen = listen.model_copy(update={"host": host})
    if port is not None:
        listen = listen.model_copy(update={"port": port})
    if insecure_no_auth:
        listen = listen.model_copy(update={"allow_unauthenticated": True})
    settings = settings.model_copy(update={"server": listen})
    if backend:
        settings = settings.model_copy(update={"backend": backend})
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_server(settings, embedded=embedded)


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def worker(args: tuple[str, ...]) -> None:
    """Run one task's attempt here and report to the server (what Slurm jobs run).

    Fetches the task with its per-task token, stages the inputs in, runs the
    executors with the node's container runtime, stages the outputs out and
    reports every step over HTTP. SIGTERM (scancel) stops the executors.
    Options: --server URL --task ID [--token-file FILE]; see `toolship worker --help`.
    """
    # The options are defined once, by the worker itself (`python -m toolship.worker`,
    # what batch scripts run without loading this CLI).
    from toolship.worker.remote import main as worker_main

    sys.exit(worker_main(list(args)))


@cli.group()
def server() -> None:
    """The local server the CLI starts on demand."""


@server.command("status")
def server_status() -> None:
    """Say whether the local server runs, and where."""
    from toolship.embedded import find_server

    found = find_server()
    if found is None:
        click.echo("no local toolship server is running (it starts on the next command)")
        sys.exit(1)
    click.echo(f"running: {found.url} (pid {found.pid}, home {found.home})")


@server.command("stop")
def server_stop() -> None:
    """Stop the local server. Running tasks keep running and are picked up on restart."""
    from toolship.embedded import stop_server

    stopped = stop_server()
    if stopped is None:
        click.echo("no local toolship server is running")
        return
    click.echo(f"stopped the local server (pid {stopped.pid})")


tasks.register(cli)
batches.register(cli)
cache.register(cli)
services.register(cli)
sboms.register(cli)
audit.register(cli)
reruns.register(cli)
provenance.register(cli)
users.register(cli)
quota.register(cli)
ui.register(cli)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ToolshipError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
        sys.exit(2 if exc.status_code in (400, 404) else 1)
    except KeyboardInterrupt:
        sys.exit(130)
