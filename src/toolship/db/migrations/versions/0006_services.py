"""the services catalog: one row per immutable service version

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_versions",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("repository", sa.Text, nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("deprecated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("doc", sa.Text, nullable=False),
        sa.Column("containerfile", sa.Text, nullable=True),
    )
    op.create_index(
        "ux_service_versions_name_version", "service_versions", ["name", "version"], unique=True
    )
    op.create_index("ix_service_versions_digest", "service_versions", ["digest"])


def downgrade() -> None:
    op.drop_table("service_versions")
