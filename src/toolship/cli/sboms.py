"""`toolship sbom`: an image's SBOM, made once per digest by the server."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from toolship.cli.context import Ctx
from toolship.cli.services import split_ref
from toolship.client import Client
from toolship.errors import NotFound, ToolshipError
from toolship.supply.sboms import FORMATS, SbomFormat, check_format

__all__ = ["register", "sbom"]

err = Console(stderr=True, highlight=False)

_TASK_ID = re.compile(r"[0-9a-hjkmnp-tv-z]{17}")  # engine.ids: 9 time + 8 random digits
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_SERVICE = re.compile(r"[^/:]+(@[^/:@]+)?")  # NAME[@VERSION]: no registry, no tag


def _service_image(client: Client, target: str) -> str | None:
    """The image (repository@digest) of SERVICE[@VERSION], or None if no such service."""
    if not _SERVICE.fullmatch(target):
        return None
    name, version = split_ref(target)
    try:
        if version is not None:
            return client.service_version(name, version).image
        versions = [v for v in client.service(name).versions if not v.deprecated]
    except NotFound:
        return None
    return versions[0].image if versions else None


@click.command()
@click.argument("target", metavar="IMAGE|SERVICE[@V]|TASK_ID|DIGEST")
@click.option(
    "--format",
    "format_",
    type=click.Choice(FORMATS),
    default="cyclonedx",
    show_default=True,
    help="cyclonedx: CycloneDX 1.6 JSON; cyclonedx-1.4 (Amazon Inspector's); spdx: SPDX 2.3 JSON.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the SBOM to this file (default: standard output).",
)
@click.option(
    "--executor",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="For a TASK_ID: whose image (executors count from 0).",
)
@click.pass_context
def sbom(ctx: click.Context, target: str, format_: str, output: Path | None, executor: int) -> None:
    """Print or save the SBOM of an image, a service's image, or the image a task ran.

    The server makes it once per image digest (syft, offline, from its own image
    storage) and keeps it: at registration, on first use, or now. A TASK_ID gives the
    SBOM of the exact digest its latest attempt ran.

    \b
    Examples:
      toolship sbom localhost/toolship-python -o python.cdx.json
      toolship sbom wordcount@1.0 --format spdx
      toolship sbom 0bq7x3c1m2k4n5p6r --executor 1
    """
    client = ctx.ensure_object(Ctx).client
    chosen: SbomFormat = check_format(format_)
    if _DIGEST.fullmatch(target):
        text, what = client.sbom(target, chosen), target
    elif _TASK_ID.fullmatch(target):
        text = client.task_sbom(target, executor=executor, format=chosen)
        what = f"task {target}, executor {executor}"
    else:
        image = _service_image(client, target) or target
        info = client.make_sbom(image)
        if info.error:
            raise ToolshipError(f"no SBOM of {image}: {info.error}")
        text = client.sbom(info.digest, chosen)
        what = f"{image} ({info.components} packages, {info.tool})"
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    output.write_text(text)
    err.print(f"wrote the {chosen} SBOM of {escape(what)} to {escape(str(output))}")


def register(group: click.Group) -> None:
    group.add_command(sbom)
