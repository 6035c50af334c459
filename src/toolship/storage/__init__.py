"""Moving bytes between URLs and a task's work directory, one module per URL scheme."""

from __future__ import annotations

from toolship.storage.base import Storage, StorageRegistry, scheme_of

__all__ = ["Storage", "StorageRegistry", "scheme_of"]
