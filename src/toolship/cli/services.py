"""Service commands: service build, add, ls, show, run, deprecate."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Unpack

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from toolship.buildcontext import pack
from toolship.cli.context import Ctx
from toolship.cli.format import wire_json
from toolship.cli.tasks import attach, task_options
from toolship.client import Client
from toolship.services import (
    InputPort,
    Parameter,
    PortKind,
    ServiceInterface,
    ServiceVersion,
    ServiceVersions,
)
from toolship.spec import TaskArguments
from toolship.units import format_bytes

__all__ = ["register", "service"]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


def _client(ctx: click.Context) -> Client:
    obj: Ctx = ctx.ensure_object(Ctx)
    return obj.client


def split_ref(text: str) -> tuple[str, str | None]:
    """NAME[@VERSION] as (name, version or None)."""
    name, at, version = text.partition("@")
    if not name:
        raise click.BadParameter(f"{text!r}: give the service's name, e.g. clone or clone@1.0")
    if at and not version:
        raise click.BadParameter(
            f"{text!r}: give a version after @ (toolship service show {name} lists them), "
            "or leave @ out for the latest"
        )
    return name, version or None


def _short(digest: str) -> str:
    return digest[:19]  # sha256: and 12 hex digits, as podman shows image ids


@click.group()
def service() -> None:
    """The services catalog: tools published once, pinned by digest, run by name.

    A service is an image whose labels describe it (GEF's eudat.gef.service.*, the OCI
    org.opencontainers.image.* annotations, toolship.service.*: see docs/services.md).
    Each version pins the image by manifest digest: every task of it runs
    REPOSITORY@sha256:…, never a tag.

    \b
    Examples:
      toolship service build ./wordcount/
      toolship service add localhost/clone:latest
      toolship service ls
      toolship service show wordcount
      toolship service run wordcount --in text=./book.txt --out counts=./counts/
    """


@service.command()
@click.argument(
    "folder", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "-f",
    "--file",
    metavar="PATH",
    help="The Containerfile, inside DIR. Default: DIR/Containerfile, else DIR/Dockerfile.",
)
@click.option(
    "--name",
    help="The service's name. Default: its label (toolship.service.name, "
    "eudat.gef.service.name or org.opencontainers.image.title).",
)
@click.option(
    "--version", "version", help="The version's name. Default: its label, else the digest."
)
@click.option(
    "--network",
    is_flag=True,
    help="Let RUN steps reach the network. Off by default: the build uses what the "
    "server has (FROM a local image) and downloads nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the registered version as JSON.")
@click.pass_context
def build(
    ctx: click.Context,
    folder: Path,
    file: str | None,
    name: str | None,
    version: str | None,
    network: bool,
    as_json: bool,
) -> None:
    """Build an image from DIR on the server, read its labels and register it.

    DIR is sent as the build context, less what its .containerignore (else
    .dockerignore) leaves out — patterns as Docker reads them; the Containerfile and
    the ignore file are always sent. The build log streams to stderr as it comes; a
    failed build exits 1 with the cause (the failing step's output is in the log).

    \b
    Examples:
      toolship service build ./wordcount/
      toolship service build . -f build/Containerfile --name wc --version 1.1
    """
    client = _client(ctx)
    with pack(folder, file) as packed:
        ignored = (
            f", {packed.left_out} left out by {packed.ignore_file}" if packed.ignore_file else ""
        )
        err.print(
            f"[dim]sending {escape(str(folder))}: {packed.files} files, "
            f"{format_bytes(packed.bytes)} ({format_bytes(packed.sent)} packed){ignored}; "
            f"building {escape(packed.containerfile)}[/]"
        )
        for path in packed.skipped:
            err.print(f"[yellow]skipped {escape(path)}: not a file, folder or link[/]")
        started = client.start_build(
            packed.archive, file=packed.containerfile, name=name, version=version, network=network
        )
    err.print(f"[dim]build {started.id}[/]")
    sink = sys.stderr.buffer

    def show(chunk: bytes) -> None:
        sink.write(chunk)
        sink.flush()

    registered = client.follow_build(started.id, on_log=show)
    _print_registered(registered, as_json)


@service.command()
@click.argument("image", metavar="IMAGE[:TAG|@sha256:DIGEST]")
@click.option("--name", help="The service's name. Default: its label.")
@click.option("--version", "version", help="The version's name. Default: its label.")
@click.option("--json", "as_json", is_flag=True, help="Print the registered version as JSON.")
@click.pass_context
def add(
    ctx: click.Context, image: str, name: str | None, version: str | None, as_json: bool
) -> None:
    """Register an existing image (the server's local images, or a registry's) as a service.

    The version is pinned to the image's manifest digest: if the tag moves later,
    registering it again makes a new version and this one keeps its digest.
    Registering the same digest again shows the version it already is.

    \b
    Examples:
      toolship service add localhost/clone:latest
      toolship service add 127.0.0.1:5055/tools/wc@sha256:4f1c… --name wc
    """
    registered = _client(ctx).register_service(image, name=name, version=version)
    _print_registered(registered, as_json)


def _print_registered(version: ServiceVersion, as_json: bool) -> None:
    if as_json:
        click.echo(wire_json(version, indent=2))
        return
    out.print(f"[bold]{escape(version.name)}@{escape(version.version)}[/]  {version.image}")
    out.print(f"  registered {version.registered} ({version.source or 'image'})")
    out.print(f"  run it: {escape(_usage(version))}")


@service.command("ls")
@click.option(
    "-q", "--query", metavar="TEXT", help="Only services whose name or description has TEXT."
)
@click.option("--json", "as_json", is_flag=True, help="JSON (the API's ServiceList).")
@click.pass_context
def ls(ctx: click.Context, query: str | None, as_json: bool) -> None:
    """List services: name, latest version, its digest, how many versions, description.

    Deprecated versions are left out (show NAME lists every version).
    """
    catalog = _client(ctx).services(query)
    if as_json:
        click.echo(wire_json(catalog, indent=2))
        return
    if not catalog.services:
        hint = " matching that" if query else ""
        err.print(
            f"no services{hint}: register one with toolship service add IMAGE or "
            "toolship service build DIR"
        )
        return
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "LATEST", "DIGEST", "VERSIONS", "DESCRIPTION"):
        table.add_column(column, justify="right" if column == "VERSIONS" else "left")
    for s in catalog.services:
        description = s.description.splitlines()[0] if s.description else ""
        table.add_row(
            escape(s.name), escape(s.latest), _short(s.digest), str(s.versions), escape(description)
        )
    out.print(table)


@service.command()
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="JSON: the version (NAME@VERSION), or every version of the service (NAME).",
)
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """A service's ports, parameters, command, digest, size, labels and origin.

    NAME alone shows the latest version and lists every version; NAME@VERSION shows
    that one.
    """
    name, version = split_ref(ref)
    client = _client(ctx)
    if version is not None:
        one = client.service_version(name, version)
        if as_json:
            click.echo(wire_json(one, indent=2))
        else:
            print_version(out, one)
        return
    every = client.service(name)
    if as_json:
        click.echo(wire_json(every, indent=2))
        return
    live = [v for v in every.versions if not v.deprecated]
    print_version(out, (live or every.versions)[0])
    _print_versions(out, every)


def print_version(console: Console, v: ServiceVersion) -> None:
    """One version, for people."""
    p = console.print
    note = "  [yellow](deprecated: refused for new runs)[/]" if v.deprecated else ""
    p(f"[bold]{escape(v.name)}@{escape(v.version)}[/]{note}")
    if v.description:
        p(f"  {escape(v.description)}")
    p(f"  image       {escape(v.image)}")
    facts = [
        f"id {_short(v.image_id)}" if v.image_id else "",
        format_bytes(v.size) if v.size is not None else "",
        f"built {v.created}" if v.created else "",
    ]
    if any(facts):
        p(f"              {', '.join(f for f in facts if f)}")
    origin = f" from {escape(v.reference)}" if v.reference else ""
    p(f"  registered  {v.registered} ({v.source or 'image'}{origin})")
    p(f"  signature   {_signature(v)}")
    _print_interface(console, v.interface)
    for key, value in v.oci.items():
        p(f"  {key:<11} {escape(value)}")
    if v.labels:
        p("[bold]labels[/]")
        for key, value in sorted(v.labels.items()):
            p(f"  {escape(key)}={escape(value)}")
    p(f"[bold]run[/]  {escape(_usage(v))}")


def _signature(v: ServiceVersion) -> str:
    sig = v.signature
    if sig is None:
        return "not checked"
    if sig.verified:
        return f"verified: {escape(sig.kind or '')} key {escape(sig.key or '')}".replace("  ", " ")
    return f"not verified{': ' + escape(sig.message) if sig.message else ''}"


def _print_interface(console: Console, i: ServiceInterface) -> None:
    p = console.print
    if i.command is None:
        command = "(none: the image has no CMD)"
    else:
        command = " ".join(i.command) + ("" if i.template else "  (the image's CMD)")
    p(f"  command     {escape(command)}")
    if i.workdir:
        p(f"  workdir     {escape(i.workdir)}")
    resources = [
        f"{i.cpu_cores} cpu" if i.cpu_cores is not None else "",
        f"{i.ram_gb:g} GiB memory" if i.ram_gb is not None else "",
        f"{i.disk_gb:g} GiB disk" if i.disk_gb is not None else "",
        f"timeout {i.timeout}" if i.timeout else "",
    ]
    if any(resources):
        p(f"  resources   {', '.join(r for r in resources if r)} (by default)")
    rows: list[tuple[str, ...]]
    if i.inputs:
        rows = [(q.name, q.key, q.kind.value, q.path, _need(q), q.description) for q in i.inputs]
        _table(console, "inputs (--in PORT=URL)", ("PORT", "KEY", "KIND", "PATH", "", ""), rows)
    if i.parameters:
        rows = [(q.name, q.kind.value, _need(q), _range(q), q.description) for q in i.parameters]
        _table(console, "parameters (--param NAME=VALUE)", ("NAME", "KIND", "", "", ""), rows)
    if i.outputs:
        rows = [(q.name, q.key, q.kind.value, q.path, q.description) for q in i.outputs]
        _table(console, "outputs (--out PORT=URL)", ("PORT", "KEY", "KIND", "PATH", ""), rows)


def _need(q: InputPort | Parameter) -> str:
    if q.default is not None:
        return f"default {q.default}"
    return "required" if q.required else "optional"


def _range(q: Parameter) -> str:
    if q.choices:
        return "one of " + ", ".join(q.choices)
    if q.minimum is None and q.maximum is None:
        return ""
    low = "" if q.minimum is None else f"{q.minimum:g} ≤ "
    high = "" if q.maximum is None else f" ≤ {q.maximum:g}"
    return f"{low}{q.name}{high}"


def _table(
    console: Console, title: str, columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]
) -> None:
    console.print(f"[bold]{title}[/]")
    table = Table(box=None, pad_edge=False, show_header=True, padding=(0, 2, 0, 2))
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)


def _print_versions(console: Console, every: ServiceVersions) -> None:
    console.print(f"[bold]versions[/] ({len(every.versions)}, newest first)")
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 2))
    for column in ("VERSION", "DIGEST", "REGISTERED", "FROM", ""):
        table.add_column(column)
    for v in every.versions:
        table.add_row(
            escape(v.version),
            _short(v.digest),
            v.registered[:19].replace("T", " "),
            escape(v.reference or v.source),
            "deprecated" if v.deprecated else "",
        )
    console.print(table)


def _usage(v: ServiceVersion) -> str:
    """The command line that runs this version, with a placeholder for each value (quoted
    for a shell where a name has spaces, as GEF's port names do)."""
    words = ["toolship", "service", "run", f"{v.name}@{v.version}"]
    for q in v.interface.inputs:
        if q.required and q.default is None:
            value = {PortKind.STRING: "VALUE", PortKind.DIRECTORY: "URL/"}.get(q.kind, "URL")
            words += ["--in", f"{q.name}={value}"]
    for par in v.interface.parameters:
        if par.required and par.default is None:
            words += ["--param", f"{par.name}=VALUE"]
    for o in v.interface.outputs:
        words += ["--out", f"{o.name}={'URL/' if o.kind is PortKind.DIRECTORY else 'URL'}"]
    return shlex.join(words)


@service.command("run")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option(
    "--in",
    "in_ports",
    multiple=True,
    metavar="PORT=URL",
    help="Give an input port (its name, or input1, input2, …) a URL or a local path; a "
    "string port takes the value itself. A local folder is sent as a folder.",
)
@click.option(
    "--param",
    "parameters",
    multiple=True,
    metavar="NAME=VALUE",
    help="A parameter of the service (checked against its type, bounds and choices).",
)
@click.option(
    "--out",
    "out_ports",
    multiple=True,
    metavar="PORT=URL",
    help="Where an output port's results go (its name, or output1, …): a URL or a local "
    "path. Every output port must be given one.",
)
@task_options
@click.option("-d", "--detach", is_flag=True, help="Print the task id and return at once.")
@click.pass_context
def run(
    ctx: click.Context,
    /,
    ref: str,
    in_ports: tuple[str, ...],
    parameters: tuple[str, ...],
    out_ports: tuple[str, ...],
    detach: bool,
    **options: Unpack[TaskArguments],
) -> None:
    """Run a service (its latest version, or NAME@VERSION) as a task; stream its output
    and exit with its exit code, as toolship run does.

    Ports and parameters are named by their labels (toolship service show NAME lists
    them); the server checks every one before anything runs. The task runs the
    version's image by digest, tagged toolship.service=NAME@VERSION. Every option of
    toolship run applies (resources, extra -i/-o by container path, env, tags,
    retries, -d …); the service's labels give default resources and the workdir,
    which --cpu, --memory, --timeout and -w override.

    \b
    Examples:
      toolship service run clone --in input=./data/ --out output=./results/
      toolship service run wordcount@1.2 --in text=s3://bucket/book.txt \\
          --param min=3 --out counts=./counts/ --cpu 2 --timeout 10m -d
    """
    name, version = split_ref(ref)
    client = _client(ctx)
    task = client.run_service(
        name,
        version=version,
        in_ports=list(in_ports),
        parameters=list(parameters),
        out_ports=list(out_ports),
        **options,
    )
    if detach:
        click.echo(task.id)
        return
    attach(client, task)


# -w: for a service, no default: the service's own workdir applies unless one is given.
for _param in run.params:
    if _param.name == "workdir" and isinstance(_param, click.Option):
        _param.default = None
        _param.show_default = False
        _param.help = (
            "Working directory inside the container (default: the service's own; "
            "relative -i/-o PATHs start here, else at /work)."
        )


@service.command()
@click.argument("ref", metavar="NAME@VERSION")
@click.pass_context
def deprecate(ctx: click.Context, ref: str) -> None:
    """Deprecate a version: hidden from ls, refused for new runs; its tasks keep it.

    A version is never changed or deleted: what ran with it can always be traced to
    its image.
    """
    name, version = split_ref(ref)
    if version is None:
        raise click.BadParameter(
            f"{ref!r}: name the version, e.g. {name}@1.0 (toolship service show {name} lists them)"
        )
    v = _client(ctx).deprecate_service(name, version)
    click.echo(f"deprecated {v.name}@{v.version} ({v.image})")


def register(group: click.Group) -> None:
    group.add_command(service)
