"""The result cache in the SDK: the stored keys, and forgetting one.

A task asks for the cache with ``cache=True`` (``Client.run``, ``Client.submit``) or
``resources.backend_parameters.cache = "true"`` in a TES document.
"""

from __future__ import annotations

from toolship.client.base import BaseClient
from toolship.supply.cache import CacheEntry, CacheList

__all__ = ["Cache"]


class Cache(BaseClient):
    def cache_entries(self, limit: int = 100) -> list[CacheEntry]:
        """The stored keys, newest first, each with the task that answers it."""
        return self._read(CacheList, "GET", "/api/v1/cache", params={"limit": limit}).entries

    def forget_cache(self, key: str) -> None:
        """Forget ``key``: the next task with it runs again (a 404 when it is not stored)."""
        self._send("DELETE", f"/api/v1/cache/{key}")
