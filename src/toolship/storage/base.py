"""The storage plug point and the registry of built-in schemes.

Validation (``check_*``) runs when a task is created so a bad URL is a 400,
not a failed task; transfers run in the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from toolship.errors import InvalidRequest

__all__ = ["Storage", "StorageRegistry", "scheme_of"]


def scheme_of(url: str) -> str:
    """``file`` for plain absolute paths, else the URL scheme."""
    if url.startswith("/"):
        return "file"
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        raise InvalidRequest(
            f"{url!r} is neither an absolute path nor a URL; use e.g. file:///data/x or /data/x"
        )
    return scheme


class Storage(Protocol):
    schemes: tuple[str, ...]

    def check_input(self, url: str, kind: str) -> None:
        """Raise InvalidRequest if ``url`` may not be read by a task."""
        ...

    def check_output(self, url: str) -> None:
        """Raise InvalidRequest if a task may not write to ``url``."""
        ...

    def local_source(self, url: str) -> Path | None:
        """The host path behind ``url`` when it can be mounted without copying."""
        ...

    def fetch(self, url: str, dest: Path, kind: str) -> None:
        """Copy the input at ``url`` to ``dest`` (a file or a directory tree)."""
        ...

    def deliver(self, src: Path, url: str) -> None:
        """Write the file ``src`` to ``url`` so no reader ever sees half of it."""
        ...

    def prefixes(self) -> list[str]:
        """URL prefixes a task may use (advertised in service-info.storage)."""
        ...


class StorageRegistry:
    def __init__(self, backends: Sequence[Storage]) -> None:
        self._by_scheme = {s: b for b in backends for s in b.schemes}

    def for_url(self, url: str) -> Storage:
        scheme = scheme_of(url)
        backend = self._by_scheme.get(scheme)
        if backend is None:
            known = ", ".join(f"{s}://" for s in sorted(self._by_scheme))
            raise InvalidRequest(
                f"{url!r}: this server cannot stage {scheme}:// URLs; it supports {known}"
            )
        return backend

    def prefixes(self) -> list[str]:
        seen: dict[int, Storage] = {id(b): b for b in self._by_scheme.values()}
        return [p for b in seen.values() for p in b.prefixes()]
