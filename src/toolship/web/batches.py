"""The batches pages of the web UI: the newest batches, and one batch with its report.

A batch's page shows its members' progress by state, the report's figures (the
API's :func:`toolship.api.batches.report_of`: time per member, cost, speed-up and
efficiency of a sweep) as inline SVG charts drawn by a template (``role="img"``,
an ``aria-label`` and a ``<title>``) and as tables, its members (the tasks list
filtered by the batch) and, while any member is unfinished, a "Cancel batch"
button.  The charts' geometry is computed here; the templates only draw it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from toolship.api.batches import cancel, newest, report_of
from toolship.models import BatchInfo, BatchReport, MemberReport
from toolship.states import FINAL_STATES, TaskState
from toolship.units import format_amount, format_duration
from toolship.web.forms import is_htmx
from toolship.web.pages import changer, page, viewer
from toolship.web.session import Session

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

LISTED = 50  # batches on the list page
CHARTED = 50  # members drawn in the chart and listed in its table
_ROW = 22  # px per bar
_BAR = 16
_PLOT = 360  # px of the longest bar


@dataclass(frozen=True)
class Bar:
    label: str
    text: str  # the figure written after the bar
    y: int
    width: float
    state: str  # colours the bar as the state badge


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart: one bar per row, the longest ``_PLOT`` px."""

    id: str
    title: str
    summary: str  # the aria-label's words after the title
    bars: list[Bar]
    label_width: int = 150
    text_width: int = 190

    @property
    def width(self) -> int:
        return self.label_width + _PLOT + self.text_width

    @property
    def height(self) -> int:
        return max(len(self.bars), 1) * _ROW + 8


@router.get("/batches", response_class=HTMLResponse)
async def batches_page(
    request: Request, _session: Annotated[Session, Depends(viewer)]
) -> HTMLResponse:
    listed = newest(request, LISTED)
    return page(request, "batches.html", nav="batches", batches=[_progress(b) for b in listed])


@router.get("/batches/{id}", response_class=HTMLResponse)
async def batch_page(
    request: Request, id: str, _session: Annotated[Session, Depends(viewer)]
) -> HTMLResponse:
    report = report_of(request, id)
    shown = report.members[:CHARTED]
    return page(
        request,
        "batch.html",
        nav="batches",
        report=report,
        batch=_progress(report.batch),
        shown=shown,
        fmt=_seconds,
        money=format_amount,
        time_chart=_time_chart(report, shown),
        scaling_chart=_scaling_chart(report),
    )


@router.post("/batches/{id}/cancel")
async def cancel_batch(
    request: Request, id: str, _session: Annotated[Session, Depends(changer)]
) -> Response:
    await cancel(request, id)
    target = f"/ui/batches/{id}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@dataclass(frozen=True)
class Progress:
    info: BatchInfo
    finished: int
    counts: list[tuple[str, int]]  # by state, in the state table's order

    @property
    def active(self) -> bool:
        return self.finished < self.info.size


def _progress(info: BatchInfo) -> Progress:
    counts = [(s.value, info.counts[s]) for s in TaskState if info.counts.get(s)]
    finished = sum(n for s, n in info.counts.items() if s in FINAL_STATES)
    return Progress(info, finished, counts)


def _seconds(value: float | None) -> str:
    return "" if value is None else format_duration(value)


def _member_label(m: MemberReport) -> str:
    if m.params:
        return ", ".join(f"{k}={v}" for k, v in m.params.items())
    return m.name or m.id


def _clip(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _time_chart(report: BatchReport, shown: list[MemberReport]) -> Chart:
    longest = max((m.run_seconds for m in shown), default=0.0) or 1.0
    currency = report.currency
    bars = [
        Bar(
            label=_clip(_member_label(m)),
            text=f"{_seconds(m.run_seconds)} · {format_amount(m.cost)} {currency}",
            y=4 + i * _ROW,
            width=round(_PLOT * m.run_seconds / longest, 1),
            state=m.state.value,
        )
        for i, m in enumerate(shown)
    ]
    total = report.totals
    more = ""
    if len(shown) < len(report.members):
        more = f" (the first {len(shown)} of {len(report.members)})"
    summary = (
        f"{len(shown)} members{more}; run time {_seconds(total.run_seconds)} in all, "
        f"cost {format_amount(total.cost)} {currency}"
    )
    return Chart("chart-time", "Run time and cost per task", summary, bars)


def _scaling_chart(report: BatchReport) -> Chart | None:
    if report.scaling is None or not report.scaling.points:
        return None
    points = report.scaling.points
    top = max(max(p.speedup for p in points), max(p.n for p in points) / points[0].n, 1.0)
    key = report.scaling.parameter
    bars = [
        Bar(
            label=f"{key}={p.n}",
            text=f"speed-up {p.speedup:.2f}x · {p.efficiency:.0%} efficient",
            y=4 + i * _ROW,
            width=round(_PLOT * p.speedup / top, 1),
            state="COMPLETE",
        )
        for i, p in enumerate(points)
    ]
    best = max(points, key=lambda p: p.speedup)
    summary = (
        f"best speed-up {best.speedup:.2f}x at {key}={best.n} ({best.efficiency:.0%} efficient)"
    )
    return Chart(
        "chart-scaling", f"Speed-up by {key}", summary, bars, label_width=90, text_width=250
    )
