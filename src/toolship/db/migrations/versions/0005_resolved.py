"""what the server decided for a task, kept apart from the task its client reads back

Until now admission wrote its decisions into the stored TES task: the runtime
into resources.backend_parameters, and cpu_cores and ram_gb where the task had
none.  Clients read them back as if they had sent them, and py-tes 0.4 (which
Snakemake's and Toil's TES plugins pin) cannot read backend_parameters at all.
The decisions now live in the ``resolved`` column.

Existing rows: the runtime moves from the task to ``resolved`` (with the row's
cores and memory, limited when the task holds ram_gb, as admission pinned it).
Admission added the runtime to every task, so whether a client had sent it
cannot be told: it leaves every old task, and backend_parameters with it when
nothing else is left.  cpu_cores and ram_gb stay: TES 1.0 clients read them,
and a value the client sent cannot be told from a default either.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_tasks = sa.table(
    "tasks",
    sa.column("id", sa.String),
    sa.column("cpus", sa.Integer),
    sa.column("memory_gb", sa.Float),
    sa.column("spec", sa.Text),
    sa.column("resolved", sa.Text),
)


def _moved(row: Any) -> dict[str, str] | None:
    spec = json.loads(row.spec)
    resources = spec.get("resources") or {}
    params = resources.get("backend_parameters") or {}
    runtime = params.pop("runtime", None)
    if runtime is None:
        return None  # nothing was pinned: the server's defaults apply, as before
    if not params:
        resources.pop("backend_parameters", None)
    resolved = {
        "runtime": runtime,
        "cpus": row.cpus,
        "memory_gb": row.memory_gb,
        "memory_limited": "ram_gb" in resources,
    }
    return {"b_id": row.id, "b_spec": json.dumps(spec), "b_resolved": json.dumps(resolved)}


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("resolved", sa.Text, nullable=True))
    conn = op.get_bind()
    update = (
        sa.update(_tasks)
        .where(_tasks.c.id == sa.bindparam("b_id"))
        .values(spec=sa.bindparam("b_spec"), resolved=sa.bindparam("b_resolved"))
    )
    rows = conn.execute(sa.select(_tasks.c.id, _tasks.c.cpus, _tasks.c.memory_gb, _tasks.c.spec))
    moved = [m for m in map(_moved, rows) if m is not None]
    for start in range(0, len(moved), 1000):
        conn.execute(update, moved[start : start + 1000])


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("resolved")
