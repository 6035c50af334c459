"""The new-task form of the web UI: a raw TES task for people who do not use the CLI.

Fields (labels): Name, Image, Command, Inputs, Outputs, CPU cores, RAM (GB); ids
``field-name``, ``field-image``, ``field-command``, ``field-inputs``,
``field-outputs``, ``field-cpu-cores``, ``field-ram-gb``.  The command is one
argument per line; a command of one line is split as a shell would split it
(quotes group words) but no shell runs it.  Inputs are ``URL PATH`` lines and
outputs ``PATH URL`` lines (a URL or path ending in ``/`` is a folder).

The task is made exactly as TES CreateTask makes it (:func:`toolship.api.tes.create`:
the model's checks, admission, policy, quotas, who-did-what); each problem that
names a field of the task (``executors[0].image``, ``inputs[1].url``,
``resources.ram_gb``) is shown beside the form's field for it.
"""

from __future__ import annotations

import re
import shlex
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from toolship.api import access
from toolship.api.tes import create
from toolship.errors import InvalidRequest, TooManyRequests
from toolship.identity import Role
from toolship.models import Task
from toolship.web.forms import Field, created, is_htmx
from toolship.web.pages import changer, page, viewer
from toolship.web.session import Session

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

# Where a problem of the task document belongs: its path's first words → the form's field.
_WHERE = (
    ("name", "name"),
    ("executors.0.image", "image"),
    ("executors[0].image", "image"),
    ("executors", "command"),
    ("input", "inputs"),
    ("two inputs", "inputs"),
    ("output", "outputs"),
    ("resources.cpu_cores", "cpu_cores"),
    ("resources.ram_gb", "ram_gb"),
)


def _fields(sent: dict[str, str] | None = None) -> dict[str, Field]:
    fields = [
        Field("name", "name", "Name", hint="Optional: a name to find the task by"),
        Field("image", "image", "Image", required=True, placeholder="busybox, python:3.12"),
        Field(
            "command",
            "command",
            "Command",
            required=True,
            widget="textarea",
            hint="One argument per line. A single line is split like a shell line "
            "(quotes group words); no shell runs it: write sh, -c, … for one",
        ),
        Field(
            "inputs",
            "inputs",
            "Inputs",
            widget="textarea",
            hint="One 'URL PATH' per line: the URL is staged at PATH in the container "
            "(a URL ending in / is a folder)",
            placeholder="s3://bucket/data.csv /data/in.csv",
        ),
        Field(
            "outputs",
            "outputs",
            "Outputs",
            widget="textarea",
            hint="One 'PATH URL' per line: PATH in the container is delivered to the URL "
            "(a PATH ending in / is a folder)",
            placeholder="/data/out.csv s3://bucket/out.csv",
        ),
        Field(
            "cpu-cores",
            "cpu_cores",
            "CPU cores",
            inputmode="numeric",
            hint="Optional: whole cores (the server's default otherwise)",
        ),
        Field(
            "ram-gb",
            "ram_gb",
            "RAM (GB)",
            inputmode="decimal",
            hint="Optional: GiB of memory (the server's default otherwise)",
        ),
    ]
    for f in fields:
        f.value = (sent or {}).get(f.name, "")
    return {f.name: f for f in fields}


@router.get("/new", response_class=HTMLResponse)
async def new_page(request: Request, _session: Annotated[Session, Depends(viewer)]) -> HTMLResponse:
    return page(request, "new.html", nav="new", fields=_fields(), general=[])


@router.post("/new", response_class=HTMLResponse)
async def new_task(request: Request, _session: Annotated[Session, Depends(changer)]) -> Response:
    access.require(request, Role.USER, "creating tasks")
    form = await request.form()
    sent = {k: v for k, v in form.items() if isinstance(v, str)}
    fields = _fields(sent)
    general: list[str] = []
    status = 400
    doc = _document(sent, fields)
    if not any(f.error for f in fields.values()):
        try:
            task = Task.model_validate(doc)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                message = str(err["msg"]).removeprefix("Value error, ")
                _place(f"{where}: {message}", fields, general)
        else:
            try:
                return created(request, await create(request, task))
            except (InvalidRequest, TooManyRequests) as exc:
                status = exc.status_code
                _place(exc.message, fields, general)
    template = "_new_form.html" if is_htmx(request) else "new.html"
    return page(request, template, status_code=status, nav="new", fields=fields, general=general)


def _place(problem: str, fields: dict[str, Field], general: list[str]) -> None:
    for prefix, name in _WHERE:
        if problem.startswith(prefix):
            fields[name].fail(problem)
            return
    general.append(problem)


def _document(sent: dict[str, str], fields: dict[str, Field]) -> dict[str, Any]:
    """The TES task the form describes; what cannot be read is put beside its field."""
    doc: dict[str, Any] = {}
    if name := sent.get("name", "").strip():
        doc["name"] = name
    image = sent.get("image", "").strip()
    if not image:
        fields["image"].fail("give the image to run, e.g. busybox or python:3.12")
    command = _command(sent.get("command", ""), fields["command"])
    doc["executors"] = [{"image": image, "command": command}]
    inputs = [
        {"url": url, "path": path, "type": "DIRECTORY" if url.endswith("/") else "FILE"}
        for url, path in _pairs(sent.get("inputs", ""), "URL PATH", fields["inputs"])
    ]
    outputs = [
        {
            "path": path.rstrip("/") or path,
            "url": url,
            "type": "DIRECTORY" if path.endswith("/") else "FILE",
        }
        for path, url in _pairs(sent.get("outputs", ""), "PATH URL", fields["outputs"])
    ]
    if inputs:
        doc["inputs"] = inputs
    if outputs:
        doc["outputs"] = outputs
    resources: dict[str, Any] = {}
    cores = sent.get("cpu_cores", "").strip()
    if cores:
        if re.fullmatch(r"\d{1,6}", cores) and int(cores) >= 1:
            resources["cpu_cores"] = int(cores)
        else:
            fields["cpu_cores"].fail(f"{cores!r} is not a whole number of cores (1 or more)")
    ram = sent.get("ram_gb", "").strip()
    if ram:
        try:
            resources["ram_gb"] = float(ram)
        except ValueError:
            fields["ram_gb"].fail(f"{ram!r} is not a number of GB, e.g. 0.5 or 4")
    if resources:
        doc["resources"] = resources
    return doc


def _command(text: str, field: Field) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        field.fail("give the command to run: one argument per line, or one shell-like line")
        return []
    if len(lines) > 1:
        return lines
    try:
        return shlex.split(lines[0])
    except ValueError as exc:
        field.fail(
            f"cannot split {lines[0]!r}: {exc}; close the quote, or give one argument per line"
        )
        return []


def _pairs(text: str, shape: str, field: Field) -> list[tuple[str, str]]:
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if len(words) != 2:
            field.fail(f"line {n}: {line.strip()!r} is not '{shape}' (two words)")
            continue
        pairs.append((words[0], words[1]))
    return pairs
