"""`toolship provenance`: how a task's results were made, and its Process Run Crate."""

from __future__ import annotations

import io
import shlex
import zipfile
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from toolship.cli.context import Ctx
from toolship.cli.format import wire_json
from toolship.errors import InvalidRequest
from toolship.supply.record import AttemptRecord, ExecutorRecord, FileRecord, Provenance
from toolship.units import format_bytes

__all__ = ["provenance", "register"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@click.command()
@click.argument("target", metavar="TASK_ID")
@click.option(
    "--crate",
    type=click.Path(path_type=Path),
    help="Write the Process Run Crate (RO-Crate) here: a folder, or a zip if it ends in .zip.",
)
@click.option("--batch", is_flag=True, help="TASK_ID is a batch's id: one crate of every member.")
@click.option(
    "--license",
    "license_",
    metavar="URL",
    help="The crate's license, e.g. https://spdx.org/licenses/CC-BY-4.0 "
    "(default: a sentence saying none was given).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.pass_context
def provenance(
    ctx: click.Context,
    target: str,
    crate: Path | None,
    batch: bool,
    license_: str | None,
    as_json: bool,
) -> None:
    """Print how a task's results were made; with --crate, write its Process Run Crate.

    The record holds, per attempt, each executor's image as it ran (the manifest
    digest and image id, and where its SBOM is), command, working directory,
    environment, start, end and exit code, and every input and output with its URL and
    sha256. The crate says the same as an RO-Crate 1.1 with the Process Run Crate
    profile (with inline inputs and the stored SBOMs inside it).

    \b
    Examples:
      toolship provenance 0bq7x3c1m2k4n5p6r
      toolship provenance 0bq7x3c1m2k4n5p6r --crate run.crate.zip
      toolship provenance 0bq7x3c1m2k4n5p6s --batch --crate sweep-crate/
    """
    client = ctx.ensure_object(Ctx).client
    if batch and crate is None:
        raise InvalidRequest("a batch has a crate, not one record: add --crate DIR|ZIP")
    if crate is not None:
        if crate.suffix != ".zip" and crate.exists() and any(crate.iterdir()):
            raise InvalidRequest(
                f"{crate} is a folder that is not empty: name a new folder or a .zip"
            )
        body = (client.batch_crate if batch else client.crate)(target, license=license_)
        _write(body, crate)
        err.print(f"wrote the Process Run Crate of {'batch' if batch else 'task'} "
                  f"{escape(target)} to {escape(str(crate))}")  # fmt: skip
        if not as_json:
            return
    record = client.provenance(target)
    if as_json:
        click.echo(wire_json(record, indent=2))
        return
    _print(record)


def _write(body: bytes, dest: Path) -> None:
    if dest.suffix == ".zip":
        dest.write_bytes(body)
        return
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        z.extractall(dest)


def _print(record: Provenance) -> None:
    title = f"task {record.id}" + (f" ({record.name})" if record.name else "")
    out.print(f"[bold]{escape(title)}[/]  {record.state}  created {record.creation_time}")
    if record.batch_id:
        out.print(f"batch {record.batch_id}")
    for key, value in sorted(record.tags.items()):
        out.print(f"tag {escape(key)}={escape(value)}")
    if not record.attempts:
        out.print("no attempt has started: nothing ran yet")
    for attempt in record.attempts:
        _print_attempt(attempt, len(record.attempts))


def _print_attempt(attempt: AttemptRecord, attempts: int) -> None:
    out.print(f"\n[bold]attempt {attempt.attempt} of {attempts}[/]  "
              f"{attempt.start_time or '-'} → {attempt.end_time or '-'}")  # fmt: skip
    for ex in attempt.executors:
        _print_executor(ex)
    if attempt.inputs:
        out.print("  inputs:")
        for f in attempt.inputs:
            _print_file(f)
    if attempt.outputs:
        out.print("  outputs:")
        for f in attempt.outputs:
            _print_file(f)


def _print_executor(ex: ExecutorRecord) -> None:
    out.print(f"  executor {ex.index}: {escape(ex.image)}")
    out.print(f"    digest   {ex.digest or '(not recorded)'}")
    if ex.image_id:
        out.print(f"    image id {ex.image_id}")
    if ex.sbom is None:
        sbom = "none stored (toolship sbom IMAGE makes one)" if ex.digest else "-"
    elif ex.sbom.error:
        sbom = f"none could be made: {ex.sbom.error}"
    else:
        sbom = f"{ex.sbom.url} ({ex.sbom.tool})"
    out.print(f"    sbom     {escape(sbom)}")
    out.print(f"    command  {escape(shlex.join(ex.command))}")
    if ex.workdir:
        out.print(f"    workdir  {escape(ex.workdir)}")
    for key, value in sorted(ex.env.items()):
        out.print(f"    env      {escape(key)}={escape(value)}")
    ended = "running" if ex.exit_code is None else f"exit {ex.exit_code}"
    out.print(f"    ran      {ex.start_time or '-'} → {ex.end_time or '-'}  {ended}")


def _print_file(f: FileRecord) -> None:
    where = f.url or "(inline)"
    size = f"  {format_bytes(f.size)}" if f.size is not None else ""
    digest = f"  sha256 {f.sha256}" if f.sha256 else ("" if f.files else "  (no hash recorded)")
    out.print(f"    {escape(f.path)}  {escape(where)}{size}{digest}")
    for part in f.files:
        out.print(f"      {escape(part.path)}  sha256 {part.sha256}")


def register(group: click.Group) -> None:
    group.add_command(provenance)
