"""many users: owners of tasks and batches, users and their tokens, who did what

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("owner", sa.String(255), nullable=True))
        batch.add_column(sa.Column("owner_group", sa.String(255), nullable=True))
    op.create_index("ix_tasks_owner_seq", "tasks", ["owner", "seq"])
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("owner", sa.String(255), nullable=True))
        batch.add_column(sa.Column("owner_group", sa.String(255), nullable=True))
    op.create_table(
        "users",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("groups", sa.Text, nullable=False, server_default="[]"),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created", sa.Text, nullable=False),
    )
    op.create_table(
        "user_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "user",
            sa.String(255),
            sa.ForeignKey("users.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created", sa.Text, nullable=False),
        sa.Column("revoked", sa.Text, nullable=True),
        sa.Column("last_used", sa.Text, nullable=True),
    )
    op.create_index("ix_user_tokens_user", "user_tokens", ["user"])
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Text, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.Text, nullable=False, server_default=""),
        sa.Column("address", sa.String(64), nullable=False, server_default=""),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_events_actor_seq", "events", ["actor", "seq"])
    op.create_index("ix_events_action_seq", "events", ["action", "seq"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("user_tokens")
    op.drop_table("users")
    op.drop_index("ix_tasks_owner_seq", "tasks")
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("owner_group")
        batch.drop_column("owner")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("owner_group")
        batch.drop_column("owner")
