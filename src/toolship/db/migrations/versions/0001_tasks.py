"""tasks and their tags

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("creation_time", sa.String(40), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cpus", sa.Integer, nullable=False),
        sa.Column("memory_gb", sa.Float, nullable=False),
        sa.Column("gpus", sa.Integer, nullable=False, server_default="0"),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("logs", sa.Text, nullable=False, server_default="[]"),
        sa.Column("runtime", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_tasks_state_seq", "tasks", ["state", "seq"])
    op.create_index("ix_tasks_name_seq", "tasks", ["name", "seq"])
    op.create_table(
        "task_tags",
        sa.Column(
            "task_seq",
            sa.Integer,
            sa.ForeignKey("tasks.seq", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("ix_task_tags_kv", "task_tags", ["key", "value", "task_seq"])
    op.create_index("ix_task_tags_task", "task_tags", ["task_seq"])


def downgrade() -> None:
    op.drop_table("task_tags")
    op.drop_table("tasks")
