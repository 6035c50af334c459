"""Moving bytes between URLs and a task's work directory, one module per URL scheme.

``local.py`` file:// · ``s3.py`` s3:// · ``http.py`` http(s):// · ``webdav.py``
webdav(s):// · ``cloud.py`` gs://, az:// — the remote ones on the shared transfer
engine of ``remote.py`` (over fsspec) and the byte moving of ``transfer.py``.
:func:`make_registry` is the one list of them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

from toolship.storage.base import (
    MissingInput,
    StageContext,
    Storage,
    StorageRegistry,
    redact,
    scheme_of,
)
from toolship.storage.cloud import AzureStorage, GcsStorage
from toolship.storage.http import HttpStorage
from toolship.storage.local import LocalStorage
from toolship.storage.remote import RemoteStorage
from toolship.storage.s3 import S3Storage
from toolship.storage.settings import StorageSettings
from toolship.storage.transfer import FileRecord
from toolship.storage.webdav import WebdavStorage

__all__ = [
    "FileRecord",
    "MissingInput",
    "StageContext",
    "Storage",
    "StorageRegistry",
    "make_registry",
    "redact",
    "scheme_of",
]

# Every scheme besides file:// (which takes the host's own options below), in the order
# service-info lists them.  One with an ``extra`` is there only when its package is.
REMOTE_SCHEMES: tuple[type[RemoteStorage], ...] = (
    S3Storage,
    HttpStorage,
    WebdavStorage,
    GcsStorage,
    AzureStorage,
)


def make_registry(
    settings: StorageSettings,
    *,
    excluded: Mapping[Path, str] | None = None,
    reader: tuple[int, int] | None = None,
    owner: tuple[int, int] | None = None,
    mount: bool = True,
) -> StorageRegistry:
    """file:// and :data:`REMOTE_SCHEMES`; gs:// and az:// when their extras are installed.

    ``excluded``, ``reader``, ``owner`` and ``mount`` are for local files: see
    :class:`LocalStorage`.
    """
    storages: list[Storage] = [
        LocalStorage(
            settings.allowed_roots, excluded=excluded, reader=reader, owner=owner, mount=mount
        )
    ]
    missing: dict[str, str] = {}  # scheme -> how to get it
    for cls in REMOTE_SCHEMES:
        if cls.extra is None or importlib.util.find_spec(cls.extra[0]) is not None:
            storages.append(cls(settings))
            continue
        for scheme in cls.schemes:
            missing[scheme] = (
                f"{scheme}:// needs the optional extra: pip install 'toolship[{cls.extra[1]}]' "
                "on the server"
            )
    return StorageRegistry(storages, missing)
