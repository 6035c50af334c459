"""Moving bytes between URLs and a task's work directory, one module per URL scheme."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from toolship.storage.base import StageContext, Storage, StorageRegistry, redact, scheme_of
from toolship.storage.local import LocalStorage
from toolship.storage.remote import HttpStorage, S3Storage, WebdavStorage, optional_storages
from toolship.storage.settings import StorageSettings
from toolship.storage.transfer import FileRecord

__all__ = [
    "FileRecord",
    "StageContext",
    "Storage",
    "StorageRegistry",
    "make_registry",
    "redact",
    "scheme_of",
]


def make_registry(
    settings: StorageSettings,
    *,
    excluded: Mapping[Path, str] | None = None,
    reader: tuple[int, int] | None = None,
    owner: tuple[int, int] | None = None,
    mount: bool = True,
) -> StorageRegistry:
    """The built-in schemes, plus gs:// and az:// when their extras are installed.

    ``excluded``, ``reader``, ``owner`` and ``mount`` are for local files: see
    :class:`LocalStorage`.
    """
    extra, missing = optional_storages(settings)
    return StorageRegistry(
        [
            LocalStorage(
                settings.allowed_roots, excluded=excluded, reader=reader, owner=owner, mount=mount
            ),
            S3Storage(settings),
            HttpStorage(settings),
            WebdavStorage(settings),
            *extra,
        ],
        missing,
    )
