"""several replicas on one database: who they are, and which one runs each task

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started", sa.Float, nullable=False),
        sa.Column("heartbeat", sa.Float, nullable=False),
        sa.Column("stopped", sa.Float, nullable=True),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("replica", sa.String(64), nullable=True))
    op.create_index("ix_tasks_replica_state", "tasks", ["replica", "state"])


def downgrade() -> None:
    op.drop_index("ix_tasks_replica_state", "tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("replica")
    op.drop_table("replicas")
