"""``toolship audit``, ``toolship advisories import|ls`` and ``toolship vulns``: which
results used a package, and which stored images imported OSV advisories affect."""

from __future__ import annotations

import re
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from toolship.cli.context import Ctx
from toolship.cli.format import wire_json

__all__ = ["register"]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

_TASK_ID = re.compile(r"[0-9a-hjkmnp-tv-z]{17}")  # engine.ids: 17 Crockford base32 digits


def _short(digest: str) -> str:
    return digest[:19]


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column)
    return table


@click.command()
@click.argument("query", metavar="PURL|NAME[@VERSION|@RANGE]")
@click.option("--json", "as_json", is_flag=True, help="The whole answer as JSON.")
@click.pass_context
def audit(ctx: click.Context, query: str, as_json: bool) -> None:
    """Every task, batch and output that used a package.

    QUERY is a purl (pkg:deb/debian/openssl@3.0.11), a name with a version
    (openssl@3.0.11: a Debian version without revision matches its revisions), a
    name (numpy) or a range (numpy@<1.26, numpy@>=1.20,<1.26).  Images are found
    through their stored SBOMs (toolship sbom IMAGE makes one).
    """
    report = ctx.ensure_object(Ctx).client.audit(query)
    if as_json:
        click.echo(report.model_dump_json(indent=2))
        return
    if not report.images:
        err.print(
            f"no stored SBOM lists {escape(query)}; SBOMs are made once per image "
            "(toolship sbom IMAGE), at service registration and on first use"
        )
        return
    images = _table("DIGEST", "IMAGE", "PACKAGES", "SERVICES", "TASKS")
    for i in report.images:
        images.add_row(
            _short(i.digest),
            escape(i.image),
            escape(" ".join(i.packages)),
            escape(" ".join(i.services)),
            str(i.tasks),
        )
    out.print(images)
    if report.tasks:
        out.print()
        tasks = _table("TASK", "STATE", "ATTEMPT", "BATCH", "SERVICE", "IMAGE", "OUTPUTS")
        for t in report.tasks:
            outputs = " ".join(f"{o.url} sha256:{o.sha256[:12]}" for o in t.outputs)
            tasks.add_row(
                t.id,
                t.state,
                str(t.attempt),
                t.batch_id or "",
                escape(t.service or ""),
                escape(" ".join(t.images)),
                escape(outputs),
            )
        out.print(tasks)
    err.print(
        f"{len(report.images)} image(s), {len(report.tasks)} attempt(s), "
        f"{len(report.batches)} batch(es) in {report.seconds:.3f} s"
    )


@click.group()
def advisories() -> None:
    """OSV advisories, imported from files (no network): what `toolship vulns` checks."""


@advisories.command(name="import")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="The counts as JSON.")
@click.pass_context
def advisories_import(ctx: click.Context, files: tuple[Path, ...], as_json: bool) -> None:
    """Import OSV FILES: OSV's all.zip per ecosystem, or .json records."""
    try:
        report = ctx.ensure_object(Ctx).client.import_advisories(*files)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(report.model_dump_json(indent=2))
        return
    out.print(
        f"{report.records} record(s) read: {report.packages} package advisory(ies) stored, "
        f"{report.unchanged} already up to date, {len(report.skipped)} skipped"
    )
    for reason in report.skipped:
        err.print(f"skipped {escape(reason)}")


@advisories.command(name="ls")
@click.option("--package", help="Only this package's advisories.")
@click.option("-n", "--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The list as JSON.")
@click.pass_context
def advisories_ls(ctx: click.Context, package: str | None, limit: int, as_json: bool) -> None:
    """The imported advisories: id, ecosystem, package, modified, summary."""
    listed = ctx.ensure_object(Ctx).client.advisories(package, limit)
    if as_json:
        click.echo(wire_json(listed, indent=2))
        return
    table = _table("ID", "ECOSYSTEM", "PACKAGE", "MODIFIED", "SUMMARY")
    for a in listed.advisories:
        table.add_row(
            escape(a.id), escape(a.ecosystem), escape(a.package), a.modified, escape(a.summary)
        )
    out.print(table)
    if listed.total > len(listed.advisories):
        err.print(f"{len(listed.advisories)} of {listed.total}; -n raises the limit")


@click.command()
@click.argument("target", required=False, metavar="[SERVICE[@V]|TASK_ID]")
@click.option("--image", help="The images a reference (as tasks ran it) or a digest names.")
@click.option("--all", "every", is_flag=True, help="Every stored image (the default).")
@click.option("--json", "as_json", is_flag=True, help="The whole answer as JSON.")
@click.pass_context
def vulns(
    ctx: click.Context, target: str | None, image: str | None, every: bool, as_json: bool
) -> None:
    """Imported advisories that affect stored images, with the fixed versions and the
    tasks that ran them: of a service, of the images a task ran, or of all."""
    if sum(x for x in (target is not None, image is not None, every)) > 1:
        raise click.UsageError("name one of SERVICE, TASK_ID, --image or --all")
    task = target if target and _TASK_ID.fullmatch(target) else None
    service = target if target and task is None else None
    report = ctx.ensure_object(Ctx).client.vulns(task=task, service=service, image=image)
    if as_json:
        click.echo(report.model_dump_json(indent=2))
        return
    for digest in report.without_sbom:
        err.print(f"{_short(digest)}: no SBOM stored (toolship sbom says why); not checked")
    if not report.vulns:
        err.print(
            f"no imported advisory affects {report.scope} ({report.digests} image(s), "
            f"{report.advisories} advisories imported)"
        )
        return
    table = _table("ADVISORY", "PACKAGE", "VERSION", "FIXED", "IMAGE", "SERVICES", "TASKS")
    for v in report.vulns:
        tasks = " ".join(v.tasks[:5]) + (f" (+{len(v.tasks) - 5})" if len(v.tasks) > 5 else "")
        table.add_row(
            escape(v.advisory),
            escape(v.package.partition("?")[0]),
            escape(v.version),
            escape(", ".join(v.fixed) or "none"),
            escape(", ".join(v.images) or _short(v.digest)),
            escape(" ".join(v.services)),
            tasks,
        )
    out.print(table)


def register(group: click.Group) -> None:
    group.add_command(audit)
    group.add_command(advisories)
    group.add_command(vulns)
