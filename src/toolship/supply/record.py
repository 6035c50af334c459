"""A task's provenance record on the wire: what ran, from which bytes, and what came out.

The server builds it from the stored task (:mod:`toolship.provenance.record`), the SDK
and the CLI read it, and the Process Run Crate (:mod:`toolship.provenance.crate`) is
written from it alone — so the crate can never say more than the record does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AttemptRecord", "ExecutorRecord", "FileRecord", "Provenance", "SbomRef"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FileRecord(_Record):
    """One input or output as the attempt staged or delivered it.

    ``sha256`` is None when the attempt recorded no hash (it never got that far).  A
    directory lists the files staged under it in ``files``, each with its own hash.
    """

    path: str  # in the container
    url: str | None = None  # None: an inline input, its text in ``content``
    content: str | None = None
    type: str = "FILE"  # FILE or DIRECTORY
    name: str | None = None
    size: int | None = None  # bytes; unknown for inputs (staging records only hashes)
    sha256: str | None = None  # hex
    files: list[FileRecord] = Field(default_factory=list)  # of a directory


class SbomRef(_Record):
    """Where the SBOM of an executor's image is, when the server has made one."""

    digest: str
    url: str  # the server's route, e.g. /api/v1/sboms/sha256:…
    tool: str = ""
    error: str | None = None  # why none could be made


class ExecutorRecord(_Record):
    index: int
    image: str  # the reference the task named
    digest: str | None = None  # manifest sha256:… that ran (None: not recorded)
    image_id: str | None = None  # config sha256:…
    command: list[str]
    workdir: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    exit_code: int | None = None  # None: the executor never ended (or never started)
    sbom: SbomRef | None = None


class AttemptRecord(_Record):
    attempt: int  # 1 = the first
    start_time: str | None = None
    end_time: str | None = None
    executors: list[ExecutorRecord] = Field(default_factory=list)
    inputs: list[FileRecord] = Field(default_factory=list)
    outputs: list[FileRecord] = Field(default_factory=list)
    system_logs: list[str] = Field(default_factory=list)


class Provenance(_Record):
    """Everything toolship knows of how a task's results were made, attempt by attempt
    (the last one is the one whose outputs count)."""

    id: str
    name: str | None = None
    description: str | None = None
    state: str
    creation_time: str
    batch_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    resources: dict[str, Any] = Field(default_factory=dict)  # as run (defaults resolved)
    attempts: list[AttemptRecord] = Field(default_factory=list)

    @property
    def last(self) -> AttemptRecord | None:
        return self.attempts[-1] if self.attempts else None
