"""How inputs and outputs are reached: the ``[storage]`` section of the settings.

Kept apart from :mod:`toolship.config` (which reads files and the environment) so a
compute-node worker can validate the storage settings the server sends it without
loading the settings machinery.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

__all__ = ["S3Settings", "StorageSettings"]


class S3Settings(BaseModel):
    """How s3:// URLs are reached; credentials come from the usual AWS chain by default."""

    endpoint_url: str = ""  # e.g. http://127.0.0.1:9000 for MinIO; empty = AWS
    region: str = ""
    profile: str = ""  # a named profile from ~/.aws/config of the server's user
    anonymous: bool = False


class StorageSettings(BaseModel):
    # file:// URLs (inputs and outputs) must resolve inside one of these.
    allowed_roots: list[Path] = Field(
        default_factory=lambda: [Path.home(), Path(tempfile.gettempdir())]
    )
    # Files (or small-file requests) in flight at once per attempt, and tries per file on
    # transient errors.  Small objects cost a round trip each, so many go at once.
    max_concurrency: int = Field(default=32, ge=1, le=256)
    attempts: int = Field(default=4, ge=1, le=20)
    s3: S3Settings = Field(default_factory=S3Settings)
    webdav_username: str = ""
    webdav_password: str = ""

    @field_validator("allowed_roots")
    @classmethod
    def _resolve(cls, v: list[Path]) -> list[Path]:
        return [p.expanduser().resolve() for p in v]
