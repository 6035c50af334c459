"""``http://`` and ``https://`` — read-only inputs from web servers (fsspec's HTTP filesystem).

The URL names the host to connect to, so the egress policy applies, at creation and
on every connection (:func:`~toolship.storage.egress.aiohttp_session`).  Web servers
cannot be listed: no directories, no patterns; no credentials are sent.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

from toolship.errors import InvalidRequest
from toolship.storage.egress import aiohttp_session
from toolship.storage.remote import RemoteStorage

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["HttpStorage"]


class HttpStorage(RemoteStorage):
    """http:// and https:// — read-only inputs from web servers."""

    schemes: tuple[str, ...] = ("http", "https")
    writable = False
    names_hosts = True

    def path(self, url: str) -> str:
        return url.rstrip("/")

    def url_of(self, url: str, path: str) -> str:
        return path

    def glob(self, pattern: str, credentials: Mapping[str, str]) -> list[str]:
        raise InvalidRequest(
            f"{pattern!r}: web servers cannot be listed, so http(s):// patterns cannot be "
            "mapped over; list the URLs yourself and run a sweep with --params-file"
        )

    def make_filesystem(self, url: str, credentials: Mapping[str, str]) -> AbstractFileSystem:
        from fsspec.implementations.http import HTTPFileSystem

        fs: AbstractFileSystem = HTTPFileSystem(
            skip_instance_cache=True, get_client=functools.partial(aiohttp_session, self.egress)
        )
        return fs
