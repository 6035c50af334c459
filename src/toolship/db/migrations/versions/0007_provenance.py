"""supply chain and provenance: images per attempt, SBOMs, components, advisories, cache

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attempt_images",
        sa.Column(
            "task_seq",
            sa.Integer,
            sa.ForeignKey("tasks.seq", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("executor", sa.Integer, nullable=False),
        sa.Column("image", sa.Text, nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("image_id", sa.String(80), nullable=False),
        sa.PrimaryKeyConstraint("task_seq", "attempt", "executor"),
    )
    op.create_index("ix_attempt_images_digest", "attempt_images", ["digest"])
    op.create_index("ix_attempt_images_image_id", "attempt_images", ["image_id"])
    op.create_table(
        "sboms",
        sa.Column("digest", sa.String(80), primary_key=True),
        sa.Column("image", sa.Text, nullable=False),
        sa.Column("image_id", sa.String(80), nullable=False),
        sa.Column("made", sa.Text, nullable=False),
        sa.Column("tool", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("cyclonedx", sa.Text, nullable=True),
        sa.Column("cyclonedx14", sa.Text, nullable=True),
        sa.Column("spdx", sa.Text, nullable=True),
    )
    op.create_table(
        "components",
        sa.Column(
            "digest",
            sa.String(80),
            sa.ForeignKey("sboms.digest", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("namespace", sa.Text, nullable=False, server_default=""),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False, server_default=""),
        sa.Column("purl", sa.Text, nullable=False),
    )
    op.create_index("ix_components_name_version", "components", ["name", "version"])
    op.create_index(
        "ix_components_type_namespace_name", "components", ["type", "namespace", "name"]
    )
    op.create_index("ix_components_digest", "components", ["digest"])
    op.create_table(
        "advisories",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("ecosystem", sa.Text, nullable=False),
        sa.Column("package", sa.Text, nullable=False),
        sa.Column("modified", sa.Text, nullable=False, server_default=""),
        sa.Column("doc", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", "ecosystem", "package"),
    )
    op.create_index("ix_advisories_package", "advisories", ["package"])
    op.create_table(
        "cache_entries",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column(
            "task_seq",
            sa.Integer,
            sa.ForeignKey("tasks.seq", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("cache_entries", "advisories", "components", "sboms", "attempt_images"):
        op.drop_table(table)
