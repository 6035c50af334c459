"""The storage plug point and the registry of built-in schemes.

Validation (``check_*``) runs when a task is created so a bad URL is a 400,
not a failed task; transfers run in the worker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast, runtime_checkable
from urllib.parse import urlsplit

from toolship.errors import InvalidRequest, StagingError
from toolship.storage.transfer import FileRecord
from toolship.wildcards import has_wildcard

__all__ = [
    "MissingInput",
    "Progress",
    "StageContext",
    "Storage",
    "StorageRegistry",
    "redact",
    "scheme_of",
    "split_pattern",
]


class MissingInput(StagingError):
    """An input's URL names nothing: an error, except for a folder the task syncs, which
    the task's own outputs will create (the worker stages it as an empty directory)."""

    def __init__(self, url: str) -> None:
        super().__init__(f"input {url} does not exist")


def split_pattern(pattern: str) -> tuple[str, str]:
    """``(fixed folder, rest)`` of a glob pattern: ``("/a/b", "c/*.txt")`` for ``/a/b/c/*.txt``.

    The fixed folder is the part before the first path component holding a wildcard.
    """
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        if has_wildcard(part):
            return "/".join(parts[:i]), "/".join(parts[i:])
    return "/".join(parts[:-1]), parts[-1]


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


def redact(url: str) -> str:
    """``url`` without any user:password part, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return parts._replace(netloc=f"***@{host}").geturl()


@dataclass
class Progress:
    """Files and bytes moved so far (read by the API while an attempt stages)."""

    files: int = 0
    bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, size: int) -> None:
        with self._lock:
            self.files += 1
            self.bytes += size


@dataclass
class StageContext:
    """What one attempt's transfers share: credentials, a bounded pool, the retry budget."""

    pool: ThreadPoolExecutor
    credentials: Mapping[str, str] = field(default_factory=dict)
    attempts: int = 4
    concurrency: int = 8  # requests in flight for a bulk transfer of small files
    progress: Progress = field(default_factory=Progress)


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

    def fetch(self, url: str, dest: Path, kind: str, ctx: StageContext) -> list[FileRecord]:
        """Copy the input at ``url`` to ``dest`` (a file, or a tree for DIRECTORY).

        Each record's ``path`` is relative to ``dest`` ("" for a FILE input).  A
        missing input raises StagingError naming the URL.
        """
        ...

    def deliver(self, src: Path, url: str, ctx: StageContext) -> FileRecord:
        """Write the file ``src`` to ``url`` so no reader ever sees half of it."""
        ...

    def deliver_directory(self, url: str, ctx: StageContext) -> bool:
        """Make the directory ``url`` (and its parents) exist, empty if it is new.

        False where the store keeps no empty directories (the caller says so in the
        task's system logs); a failure raises StagingError naming the URL.
        """
        ...

    def prefixes(self) -> list[str]:
        """URL prefixes a task may use (advertised in service-info.storage)."""
        ...

    def glob(self, pattern: str, credentials: Mapping[str, str]) -> list[str]:
        """The URLs of the files matching ``pattern`` (``*``, ``?``, ``[..]``, ``**``), sorted.

        Raises InvalidRequest when the scheme cannot be listed or the listing fails.
        """
        ...


@runtime_checkable
class Scoped(Protocol):
    """A storage whose reach depends on the task's owner (file:// roots naming {user})."""

    def for_owner(self, name: str | None) -> Storage: ...


def _scoped(backends: Iterable[Storage]) -> list[Storage]:
    """The backends that are :class:`Scoped`, once each.

    Not ``isinstance(b, Scoped)``: against a Protocol that walks the protocol's members
    on every call, and every task and request asks for its owner's view.
    """
    found = {id(b): b for b in backends if callable(getattr(b, "for_owner", None))}
    return list(found.values())


class StorageRegistry:
    def __init__(self, backends: Sequence[Storage], missing: Mapping[str, str] | None = None):
        self._by_scheme = {s: b for b in backends for s in b.schemes}
        # scheme -> how to get it (optional extras that are not installed)
        self._missing = dict(missing or {})
        self._scoped = _scoped(self._by_scheme.values())

    def for_owner(self, name: str | None) -> StorageRegistry:
        """The registry as a task of ``name`` sees it (itself when no storage depends on it)."""
        scoped = {id(b): cast("Scoped", b).for_owner(name) for b in self._scoped}
        if all(scoped[id(b)] is b for b in self._scoped):
            return self
        out = StorageRegistry([], self._missing)
        out._by_scheme = {k: scoped.get(id(b), b) for k, b in self._by_scheme.items()}
        out._scoped = _scoped(out._by_scheme.values())
        return out

    def for_url(self, url: str) -> Storage:
        scheme = scheme_of(url)
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            raise InvalidRequest(
                f"{redact(url)}: URLs must not carry credentials; use a named profile on the "
                "server or per-task credentials (resources.backend_parameters, never echoed)"
            )
        backend = self._by_scheme.get(scheme)
        if backend is None:
            if scheme in self._missing:
                raise InvalidRequest(f"{url!r}: {self._missing[scheme]}")
            known = ", ".join(f"{s}://" for s in sorted(self._by_scheme))
            raise InvalidRequest(
                f"{url!r}: this server cannot stage {scheme}:// URLs; it supports {known}"
            )
        return backend

    def prefixes(self) -> list[str]:
        seen: dict[int, Storage] = {id(b): b for b in self._by_scheme.values()}
        return [p for b in seen.values() for p in b.prefixes()]
