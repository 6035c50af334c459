"""``gs://`` and ``az://`` (``abfs://``) through their fsspec packages, when installed.

They are optional extras (``toolship[gcs]``, ``toolship[azure]``): the registry
lists them always and, when the package is missing, answers a URL with how to
install it.  They use the cloud SDK's default credentials of the server's user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from toolship.storage.remote import RemoteStorage

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["AzureStorage", "GcsStorage"]


class _Generic(RemoteStorage):
    """A cloud store through ``fsspec.filesystem(scheme)``, with default credentials."""

    def make_filesystem(self, url: str, credentials: Mapping[str, str]) -> AbstractFileSystem:
        import fsspec

        fs: AbstractFileSystem = fsspec.filesystem(self.schemes[0], skip_instance_cache=True)
        return fs


class GcsStorage(_Generic):
    """gs:// — Google Cloud Storage through gcsfs."""

    schemes: tuple[str, ...] = ("gs",)
    extra = ("gcsfs", "gcs")


class AzureStorage(_Generic):
    """az:// and abfs:// — Azure Blob Storage through adlfs."""

    schemes: tuple[str, ...] = ("az", "abfs")
    extra = ("adlfs", "azure")
