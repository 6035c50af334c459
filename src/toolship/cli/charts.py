"""The report's PNG: per-task times, cost against turn-around, and scaling curves (matplotlib)."""

from __future__ import annotations

from pathlib import Path

from toolship.errors import ConfigError
from toolship.models import BatchReport
from toolship.units import format_amount

__all__ = ["write_report_png"]


def write_report_png(data: BatchReport, target: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "the report's charts need matplotlib: pip install 'toolship[report]' "
            "(or use --no-png for the figures only)"
        ) from None
    members = data.members
    scaling = data.scaling
    currency = data.currency
    batch = data.batch
    panels = 4 if scaling and scaling.points else 2
    rows = panels // 2
    fig, axes = plt.subplots(rows, 2, figsize=(11, 4.6 * rows), squeeze=False)
    ax = [a for row in axes for a in row]

    labels = [
        " ".join(f"{k}={v}" for k, v in m.params.items()) or m.name or m.id[-6:] for m in members
    ]
    xs = range(len(members))
    ax[0].bar(xs, [m.wall_seconds for m in members], color="#9ecae1", label="wall (reserved)")
    ax[0].bar(xs, [m.run_seconds for m in members], color="#3182bd", label="tool running")
    ax[0].set_title("Time per task")
    ax[0].set_xlabel("task")
    ax[0].set_ylabel("time [s]")
    if len(members) <= 24:
        ax[0].set_xticks(list(xs), labels, rotation=45, ha="right", fontsize=8)
    ax[0].legend(fontsize=8)

    priced = any(m.cost for m in members)
    for m, label in zip(members, labels, strict=True):
        y = m.cost if priced else m.cpus * m.wall_seconds
        ax[1].scatter(m.wall_seconds, y, color="#e6550d")
        if len(members) <= 24:
            ax[1].annotate(
                label, (m.wall_seconds, y), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    ax[1].set_title("Cost against turn-around time")
    ax[1].set_xlabel("turn-around (wall time) [s]")
    ax[1].set_ylabel(
        f"cost [{currency}]" if priced else "reserved core-seconds [core*s] (no prices set)"
    )
    if priced:  # plain amounts: seconds of a core cost millionths, not "1e-5" above the axis
        ax[1].yaxis.set_major_formatter(lambda value, _pos: format_amount(value))

    if panels == 4 and scaling:
        points = scaling.points
        ns = [p.n for p in points]
        param = scaling.parameter
        unit = "nodes" if param == "nodes" else "CPU cores"
        ax[2].plot(ns, [p.speedup for p in points], "o-", label="measured")
        ax[2].plot(
            ns, [n * points[0].speedup / ns[0] for n in ns], "--", color="grey", label="ideal"
        )
        ax[2].set_title("Speed-up T1/Tn")
        ax[2].set_xlabel(f"{param} [{unit}]")
        ax[2].set_ylabel("speed-up T1/Tn [times]")
        ax[2].set_xticks(ns)
        ax[2].legend(fontsize=8)
        ax[3].plot(ns, [100 * p.efficiency for p in points], "o-", color="#31a354")
        ax[3].axhline(100, ls="--", color="grey")
        ax[3].set_title("Parallel efficiency (speed-up / n)")
        ax[3].set_xlabel(f"{param} [{unit}]")
        ax[3].set_ylabel("efficiency [%]")
        ax[3].set_ylim(0, 110)
        ax[3].set_xticks(ns)

    fig.suptitle(f"toolship batch {batch.id} ({batch.kind}, {batch.size} tasks)")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
