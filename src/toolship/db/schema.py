"""SQLAlchemy Core tables.  Changes here need an Alembic revision in migrations/versions."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

__all__ = ["batches", "metadata", "service_versions", "task_tags", "tasks"]

metadata = MetaData()

tasks = Table(
    "tasks",
    metadata,
    # Insertion order: the keyset for pagination and the age for scheduling.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("name", Text, nullable=True),
    Column("creation_time", String(40), nullable=False),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("cpus", Integer, nullable=False),
    Column("memory_gb", Float, nullable=False),
    Column("gpus", Integer, nullable=False, server_default="0"),
    # The task as submitted (TES JSON, without server-owned fields): what clients read back.
    Column("spec", Text, nullable=False),
    # What the server decided for what the task left out (runtime, cores, memory limit:
    # OptionDefaults as JSON), so every attempt runs as the task was accepted.
    Column("resolved", Text, nullable=True),
    # TES logs[] (JSON list of attempts); loaded only for BASIC and FULL views.
    Column("logs", Text, nullable=False, server_default="[]"),
    # What the executor needs to find a running attempt again after a restart.
    Column("runtime", Text, nullable=False, server_default="{}"),
    Column("cancel_requested", Boolean, nullable=False, server_default=false()),
    # Per-task staging credentials: never rendered, wiped when the task ends.
    Column("secrets", Text, nullable=False, server_default="{}"),
    # The batch (sweep, map) this task is a member of.
    Column("batch_id", String(32), nullable=True),
    Index("ix_tasks_state_seq", "state", "seq"),
    Index("ix_tasks_batch_state", "batch_id", "state"),
    Index("ix_tasks_name_seq", "name", "seq"),
)

task_tags = Table(
    "task_tags",
    metadata,
    Column("task_seq", Integer, ForeignKey("tasks.seq", ondelete="CASCADE"), nullable=False),
    Column("key", Text, nullable=False),
    Column("value", Text, nullable=False),
    Index("ix_task_tags_kv", "key", "value", "task_seq"),
    Index("ix_task_tags_task", "task_seq"),
)

batches = Table(
    "batches",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("name", Text, nullable=True),
    Column("kind", String(16), nullable=False),  # sweep, map or tasks
    Column("creation_time", String(40), nullable=False),
    Column("size", Integer, nullable=False),
    Column("max_parallel", Integer, nullable=True),
    Column("priority", Integer, nullable=False, server_default="0"),
    # Unix time after which unfinished members are cancelled (the batch's timeout).
    Column("deadline", Float, nullable=True),
    # What the batch was made from: parameter rows, the map pattern, the reduce task id.
    Column("spec", Text, nullable=False, server_default="{}"),
)

service_versions = Table(
    "service_versions",
    metadata,
    # Registration order: "newest" is the highest seq.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("repository", Text, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("deprecated", Boolean, nullable=False, server_default=false()),
    # The whole ServiceVersion as JSON: immutable once written (but for ``deprecated``).
    Column("doc", Text, nullable=False),
    # The Containerfile it was built from, when toolship built it.
    Column("containerfile", Text, nullable=True),
    Index("ux_service_versions_name_version", "name", "version", unique=True),
    Index("ix_service_versions_digest", "digest"),
)
