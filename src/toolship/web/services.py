"""The services pages of the web UI: the catalog, one service, and its run form.

The form is generated from the version's typed ports: one labelled field per input
port and parameter (``id="field-{slug}"``), then one URL field per output port.  A
field's id is the port's or parameter's name made an HTML id (characters other
than letters, digits, ``_`` and ``-`` become ``-``; a name met twice gets ``-2``):
``Input Directory`` is ``field-Input-Directory``.  The run goes through the API's
own path (:func:`toolship.api.services.run_as_task`); each problem the catalog
(:class:`~toolship.catalog.lower.RunRefused`) or the engine (``inputs[i]``,
``outputs[i]``) names is shown beside its port's field.
"""

from __future__ import annotations

import ast
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from toolship.api.services import run_as_task
from toolship.api.state import app_state
from toolship.catalog.lower import RunRefused
from toolship.catalog.values import describe_kind
from toolship.errors import InvalidRequest, TooManyRequests
from toolship.services import (
    InputPort,
    OutputPort,
    Parameter,
    ParamKind,
    PortKind,
    ServiceRun,
    ServiceVersion,
)
from toolship.web.forms import Field, created, is_htmx, slugs
from toolship.web.pages import changer, page, viewer
from toolship.web.session import Session

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

# A catalog problem that names its port or parameter: "parameter 'top': 'x' is not an int".
_NAMED = re.compile(r"""(input|output|parameter) ('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
# An engine problem of the lowered task's n-th input or output: "inputs[0].url: …".
_INDEXED = re.compile(r"(inputs|outputs)\[(\d+)\]")
_PORT_HINTS = {
    PortKind.FILE: "URL of a file",
    PortKind.DIRECTORY: "URL of a folder (ending in /), or of one file to put in it",
    PortKind.STRING: "a value (written to a file the tool reads)",
}


@router.get("/services", response_class=HTMLResponse)
async def services_page(
    request: Request, _session: Annotated[Session, Depends(viewer)], q: str = ""
) -> HTMLResponse:
    found = app_state(request).catalog.summaries(q.strip() or None)
    return page(request, "services.html", nav="services", services=found, q=q)


@router.get("/services/{name}", response_class=HTMLResponse)
async def service_page(
    request: Request,
    name: str,
    _session: Annotated[Session, Depends(viewer)],
    version: str | None = None,
) -> HTMLResponse:
    catalog = app_state(request).catalog
    versions = catalog.versions(name)
    if not versions:
        catalog.get(name)  # the 404 that says which services there are
    shown = _chosen(versions, version) if version else _latest(versions)
    return page(
        request,
        "service.html",
        nav="services",
        versions=versions,
        shown=shown,
        **_form(shown),
    )


@router.post("/services/{name}/run", response_class=HTMLResponse)
async def run_service(
    request: Request, name: str, _session: Annotated[Session, Depends(changer)]
) -> Response:
    form = await request.form()
    sent = {k: v for k, v in form.items() if isinstance(v, str)}
    catalog = app_state(request).catalog
    version = catalog.get(name, sent.get("version") or None)
    context = _form(version, sent)
    fields: dict[str, Field] = context["fields"]
    run = ServiceRun(
        version=version.version,
        inputs={p.key: v for p in version.interface.inputs if (v := _value(sent, "in", p.key))},
        parameters={
            p.name: v for p in version.interface.parameters if (v := _value(sent, "param", p.name))
        },
        outputs={p.key: v for p in version.interface.outputs if (v := _value(sent, "out", p.key))},
    )
    try:
        task_id = await run_as_task(request, name, run)
    except RunRefused as exc:
        context["general"] = _place(exc.problems, version, fields, run)
        return _refused(request, version, context, exc.status_code)
    except (InvalidRequest, TooManyRequests) as exc:
        context["general"] = _place([exc.message], version, fields, run)
        return _refused(request, version, context, exc.status_code)
    return created(request, task_id)


def _refused(
    request: Request, version: ServiceVersion, context: dict[str, Any], status: int
) -> HTMLResponse:
    if is_htmx(request):
        return page(request, "_service_form.html", status_code=status, **context)
    catalog = app_state(request).catalog
    versions = catalog.versions(version.name)
    return page(
        request,
        "service.html",
        status_code=status,
        nav="services",
        versions=versions,
        shown=version,
        **context,
    )


def _latest(versions: list[ServiceVersion]) -> ServiceVersion:
    """The version a run uses by default: the newest that is not deprecated."""
    return next((v for v in versions if not v.deprecated), versions[0])


def _chosen(versions: list[ServiceVersion], wanted: str) -> ServiceVersion:
    for v in versions:
        if v.version == wanted:
            return v
    known = ", ".join(v.version for v in versions)
    raise InvalidRequest(f"no version {wanted!r} of this service; its versions are {known}")


def _value(sent: dict[str, str], group: str, key: str) -> str | None:
    """What the form sent for one port or parameter (an empty field: not given)."""
    value = sent.get(f"{group}.{key}", "")
    return value.strip() or None


def _form(version: ServiceVersion, sent: dict[str, str] | None = None) -> dict[str, Any]:
    """The run form's fields for ``version`` (with what was ``sent``, after a refusal)."""
    iface = version.interface
    names = [p.name for p in iface.inputs] + [p.name for p in iface.parameters]
    names += [p.name for p in iface.outputs]
    ids = iter(slugs(names))
    inputs = [_input_field(p, next(ids)) for p in iface.inputs]
    params = [_param_field(p, next(ids)) for p in iface.parameters]
    outputs = [_output_field(p, next(ids)) for p in iface.outputs]
    fields: dict[str, Field] = {f.name: f for f in inputs + params + outputs}
    if sent is not None:
        for f in fields.values():
            f.value = sent.get(f.name, "")
    return {
        "version": version,
        "inputs": inputs,
        "params": params,
        "outputs": outputs,
        "fields": fields,
        "general": [],
        "runnable": not version.deprecated and iface.command is not None,
    }


def _input_field(port: InputPort, slug: str) -> Field:
    hint = " — ".join(x for x in (port.description, _PORT_HINTS[port.kind]) if x)
    if port.default is not None:
        hint += f"; default: {port.default}"
    return Field(
        slug=slug,
        name=f"in.{port.key}",
        label=port.name,
        hint=hint + ("" if port.required else " (optional)"),
        required=port.required and port.default is None,
        inputmode=None if port.kind is PortKind.STRING else "url",
        placeholder="" if port.kind is PortKind.STRING else "file:///…, s3://…, https://…",
    )


def _param_field(param: Parameter, slug: str) -> Field:
    default = "" if param.default is None else _text(param.default)
    hint = " — ".join(x for x in (param.description, describe_kind(param)) if x)
    if default:
        hint += f"; default: {default}"
    f = Field(slug=slug, name=f"param.{param.name}", label=param.name, hint=hint)
    f.required = param.required and param.default is None
    if param.kind is ParamKind.BOOL:
        f.widget = "select"
        f.options = [("", f"default ({default or 'unset'})")] if not f.required else []
        f.options += [("true", "true"), ("false", "false")]
    elif param.kind is ParamKind.CHOICE:
        f.widget = "select"
        f.options = [("", f"default ({default or 'unset'})")] if not f.required else []
        f.options += [(c, c) for c in param.choices]
    elif param.kind is ParamKind.INT:
        f.inputmode = "numeric"
    elif param.kind is ParamKind.FLOAT:
        f.inputmode = "decimal"
    if f.widget == "text" and default:
        f.placeholder = default
    return f


def _output_field(port: OutputPort, slug: str) -> Field:
    what = "a folder" if port.kind is PortKind.DIRECTORY else "a file (or a folder: end with /)"
    hint = " — ".join(x for x in (port.description, f"where {port.path} goes: URL of {what}") if x)
    return Field(
        slug=slug,
        name=f"out.{port.key}",
        label=port.name,
        hint=hint,
        required=True,
        inputmode="url",
        placeholder="file:///…, s3://…",
    )


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _place(
    problems: list[str], version: ServiceVersion, fields: dict[str, Field], run: ServiceRun
) -> list[str]:
    """Put each problem beside the field it names; what names none is returned."""
    iface = version.interface
    by_name = {("input", p.name): f"in.{p.key}" for p in iface.inputs}
    by_name |= {("output", p.name): f"out.{p.key}" for p in iface.outputs}
    by_name |= {("parameter", p.name): f"param.{p.name}" for p in iface.parameters}
    # The lowered task's inputs are the ports that had a value, in order; outputs all ports.
    staged = [f"in.{p.key}" for p in iface.inputs if run.inputs.get(p.key, p.default) is not None]
    delivered = [f"out.{p.key}" for p in iface.outputs]
    rest = []
    for problem in problems:
        target: str | None = None
        if m := _NAMED.match(problem):
            target = by_name.get((m.group(1), ast.literal_eval(m.group(2))))
        elif m := _INDEXED.match(problem):
            listed = staged if m.group(1) == "inputs" else delivered
            n = int(m.group(2))
            target = listed[n] if n < len(listed) else None
        if target is not None and target in fields:
            fields[target].fail(problem)
        else:
            rest.append(problem)
    return rest
