"""remember a cancel request apart from the state

A cancelled running task stays RUNNING until its container is gone, then
becomes CANCELED; the request itself must survive a restart.  (TES's
CANCELING state is not used: py-tes 0.4 clients cannot parse it.)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("cancel_requested")
