"""The result cache's exact key, and its entries on the wire — pure.

A task asking for ``cache`` is answered from an earlier COMPLETE task when both have
the same key: the sha256 of the canonical JSON of what decides the results, and
nothing else.  Per executor: the image's manifest digest (a tag resolved to what it
names now, so a moved tag misses), the command as it runs, the environment, the
working directory and the stream paths; per input: its path, its type and the sha256
of every byte (a directory: each file's relative path and sha256); per output: its
path, type and path_prefix; the volumes.  Names, descriptions, tags, resources and
URLs are not in it: an output written to another URL is the same result, a task with
more memory computes the same bytes.  ``KEY_VERSION`` changes when what goes into
the key changes, so keys made by an older toolship never match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from pydantic import BaseModel

__all__ = [
    "CACHED_FROM",
    "KEY_VERSION",
    "CacheEntry",
    "CacheList",
    "ExecutorKey",
    "InputKey",
    "OutputKey",
    "cache_key",
]

KEY_VERSION = 1
# The metadata entry of an attempt answered from the cache: the task it came from.
CACHED_FROM = "toolship.cached_from"


@dataclass(frozen=True, slots=True)
class ExecutorKey:
    digest: str  # manifest sha256:… of the image that runs
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # sorted by name
    workdir: str | None = None
    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None

    @classmethod
    def of(
        cls,
        digest: str,
        command: Sequence[str],
        env: Mapping[str, str] | None,
        workdir: str | None = None,
        stdin: str | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
    ) -> ExecutorKey:
        return cls(
            digest,
            tuple(command),
            tuple(sorted((env or {}).items())),
            workdir,
            stdin,
            stdout,
            stderr,
        )


@dataclass(frozen=True, slots=True)
class InputKey:
    path: str
    type: str  # FILE or DIRECTORY
    # (path relative to the input, sha256): one entry with "" for a FILE input.
    files: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class OutputKey:
    path: str
    type: str
    path_prefix: str | None = None


def cache_key(
    executors: Sequence[ExecutorKey],
    inputs: Sequence[InputKey],
    outputs: Sequence[OutputKey],
    volumes: Sequence[str] = (),
) -> str:
    """``sha256:…`` of the canonical JSON of the key's parts (sorted keys, no spaces).

    Inputs are sorted by path (their order decides nothing), the files of a directory by
    their relative path; executors and outputs keep their order (outputs are matched to
    the new task's URLs by position).
    """
    doc = {
        "version": KEY_VERSION,
        "executors": [asdict(e) for e in executors],
        "inputs": [
            {"path": i.path, "type": i.type, "files": sorted(i.files)}
            for i in sorted(inputs, key=lambda i: i.path)
        ],
        "outputs": [asdict(o) for o in outputs],
        "volumes": sorted(volumes),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class CacheEntry(BaseModel):
    """One stored key and the COMPLETE task whose results it answers with."""

    key: str
    task_id: str
    task_name: str | None = None
    created: str  # when the key was stored (RFC 3339)


class CacheList(BaseModel):
    entries: list[CacheEntry]
