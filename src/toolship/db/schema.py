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
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
)

__all__ = [
    "advisories",
    "attempt_images",
    "batches",
    "cache_entries",
    "components",
    "events",
    "metadata",
    "replicas",
    "sboms",
    "service_versions",
    "task_tags",
    "tasks",
    "user_tokens",
    "users",
]

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
    # Who created it, and the group it counts against (migration 0008; None: before users).
    Column("owner", String(255), nullable=True),
    Column("owner_group", String(255), nullable=True),
    # The replica that runs it (migration 0009; None: stored before replicas existed).
    Column("replica", String(64), nullable=True),
    Index("ix_tasks_state_seq", "state", "seq"),
    Index("ix_tasks_owner_seq", "owner", "seq"),
    Index("ix_tasks_batch_state", "batch_id", "state"),
    Index("ix_tasks_name_seq", "name", "seq"),
    Index("ix_tasks_replica_state", "replica", "state"),
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
    Column("owner", String(255), nullable=True),
    Column("owner_group", String(255), nullable=True),
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

# Supply chain and provenance (migration 0007; docs/provenance.md).

attempt_images = Table(
    "attempt_images",
    metadata,
    # Which image each executor of each attempt ran: the index "which results used X" joins.
    Column("task_seq", Integer, ForeignKey("tasks.seq", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),  # 1 = the first
    Column("executor", Integer, nullable=False),
    Column("image", Text, nullable=False),  # the reference as run
    Column("digest", String(80), nullable=False),  # manifest sha256:…
    Column("image_id", String(80), nullable=False),  # config sha256:… ("" unknown)
    PrimaryKeyConstraint("task_seq", "attempt", "executor"),
    Index("ix_attempt_images_digest", "digest"),
    Index("ix_attempt_images_image_id", "image_id"),
)

sboms = Table(
    "sboms",
    metadata,
    # One per manifest digest, made once (syft); ``error`` says why none could be made.
    Column("digest", String(80), primary_key=True),
    Column("image", Text, nullable=False),
    Column("image_id", String(80), nullable=False),
    Column("made", Text, nullable=False),  # RFC 3339
    Column("tool", Text, nullable=False),  # e.g. "syft 1.18.1"
    Column("error", Text, nullable=True),
    Column("cyclonedx", Text, nullable=True),  # CycloneDX 1.6 JSON
    Column("cyclonedx14", Text, nullable=True),  # CycloneDX 1.4 JSON (Inspector-style)
    Column("spdx", Text, nullable=True),  # SPDX 2.3 JSON
)

components = Table(
    "components",
    metadata,
    # Every package of every SBOM, by purl parts: "audit" looks them up by name.
    Column("digest", String(80), ForeignKey("sboms.digest", ondelete="CASCADE"), nullable=False),
    Column("type", Text, nullable=False),  # purl type: deb, pypi, apk, …
    Column("namespace", Text, nullable=False, server_default=""),
    Column("name", Text, nullable=False),
    Column("version", Text, nullable=False, server_default=""),
    Column("purl", Text, nullable=False),
    Index("ix_components_name_version", "name", "version"),
    Index("ix_components_type_namespace_name", "type", "namespace", "name"),
    Index("ix_components_digest", "digest"),
)

advisories = Table(
    "advisories",
    metadata,
    # OSV records, one row per (advisory, affected package); ``doc`` is the whole record.
    Column("id", Text, nullable=False),
    Column("ecosystem", Text, nullable=False),
    Column("package", Text, nullable=False),
    Column("modified", Text, nullable=False, server_default=""),
    Column("doc", Text, nullable=False),
    PrimaryKeyConstraint("id", "ecosystem", "package"),
    Index("ix_advisories_package", "package"),
)

cache_entries = Table(
    "cache_entries",
    metadata,
    # A COMPLETE task whose exact key (supply.cache) a later task with ``cache`` may reuse.
    Column("key", String(80), primary_key=True),
    Column("task_seq", Integer, ForeignKey("tasks.seq", ondelete="CASCADE"), nullable=False),
    Column("created", Text, nullable=False),
)

# Many users (migration 0008; README, "Many users").

users = Table(
    "users",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("role", String(16), nullable=False),  # viewer, user, maintainer, admin
    Column("groups", Text, nullable=False, server_default="[]"),  # JSON list
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("created", Text, nullable=False),  # RFC 3339
)

user_tokens = Table(
    "user_tokens",
    metadata,
    # A user's bearer tokens, stored as sha256 (the token itself is shown once).
    Column("id", String(32), primary_key=True),
    Column("user", String(255), ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created", Text, nullable=False),
    Column("revoked", Text, nullable=True),  # when (RFC 3339); None: valid
    Column("last_used", Text, nullable=True),
    Index("ix_user_tokens_user", "user"),
)

events = Table(
    "events",
    metadata,
    # Who did what, append-only: creates, cancels, builds, deprecations, user and token
    # changes, logins.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("time", Text, nullable=False),  # RFC 3339
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),  # e.g. task.create, user.add
    Column("target", Text, nullable=False, server_default=""),  # a task id, a user name…
    Column("address", String(64), nullable=False, server_default=""),  # the client's
    Column("detail", Text, nullable=False, server_default=""),
    Index("ix_events_actor_seq", "actor", "seq"),
    Index("ix_events_action_seq", "action", "seq"),
)

# Several replicas on one database (migration 0009; docs/deploy.md, "Several replicas").

replicas = Table(
    "replicas",
    metadata,
    Column("name", String(64), primary_key=True),  # server.replica, else the host's name
    # Drawn anew at each start: a row whose token changed belongs to a newer incarnation.
    Column("token", String(32), nullable=False),
    Column("host", String(255), nullable=False),  # where its local containers run
    Column("pid", Integer, nullable=False),
    Column("started", Float, nullable=False),  # Unix times, the database's clock
    Column("heartbeat", Float, nullable=False),
    Column("stopped", Float, nullable=True),  # a clean stop; None while it runs (or died)
    # How other replicas reach it (server.advertise_url; migration 0010): a worker's request
    # for an attempt it runs is forwarded there.  None: registered before 0010.
    Column("url", String(1000), nullable=True),
)
