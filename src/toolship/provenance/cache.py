"""The result cache: answer a task from an earlier COMPLETE one with the same exact key.

At creation (:meth:`ResultCache.lookup`, blocking: the engine runs it in a thread) the
key is made from what would run: each image's manifest digest as the server resolves
it now, and the sha256 of every input byte, read through the storage registry with the
task's own credentials.  A stored key whose task's outputs still exist with their
recorded sha256 answers: its outputs are copied to the new task's output URLs and the
new task is stored COMPLETE with one attempt that names the task it came from; no
container runs.  Anything else is a miss and runs normally; once it ends COMPLETE
(:meth:`ResultCache.remember`), the key is made again from the digests the attempt
recorded and the inputs as they are now, and stored only when it is the same key: a
tag that moved or an input that changed while it ran stores nothing.

Reading the earlier task's outputs with the new task's credentials is deliberate: a
caller is never answered with bytes it could not have read itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import posixpath
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from toolship.db import Store, TaskRow
from toolship.db.cache import CacheStore
from toolship.errors import InvalidRequest, ToolshipError
from toolship.models import FileType, Output, OutputFileLog, Task, TaskLog
from toolship.storage import StorageRegistry
from toolship.storage.base import StageContext
from toolship.supply.cache import (
    CACHED_FROM,
    ExecutorKey,
    InputKey,
    OutputKey,
    cache_key,
)
from toolship.supply.hashes import file_hashes, record_hash
from toolship.supply.images import ImageUse, image_metadata, image_uses, pinned
from toolship.timeutil import now_rfc3339

__all__ = ["CACHE_KEY", "ResultCache"]

log = logging.getLogger(__name__)

# The metadata entry with the key a task was answered with (or stored under).
CACHE_KEY = "toolship.cache_key"

# An image reference → its manifest digest (``sha256:…``), resolved now.
Resolve = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class _Pending:
    key: str
    credentials: Mapping[str, str]


class ResultCache:
    """Looks keys up at creation and stores them when a task that asked ends COMPLETE."""

    def __init__(self, store: Store, storage: StorageRegistry, resolve: Resolve | None) -> None:
        self.store = store
        self.entries = CacheStore(store.engine)
        self.storage = storage
        self._resolve = resolve
        self._pending: dict[str, _Pending] = {}  # task id → the key it was created with
        self._lock = threading.Lock()

    # --- at creation ---------------------------------------------------------

    def lookup(
        self,
        row: TaskRow,
        task: Task,
        credentials: Mapping[str, str],
        *,
        runtime: str,
        reader: str | None = None,
    ) -> TaskLog | None:
        """The attempt that answers ``row`` from the cache, or None (a miss: it runs).

        Blocking.  ``task``: as it will run (images pinned where the server pinned
        them).  Raises InvalidRequest when the task cannot be cached at all.
        """
        if runtime == "process":
            raise InvalidRequest(
                "resources.backend_parameters.cache: a task on the process runtime runs the "
                "host's programs, which no image digest pins, so it cannot be cached; run it "
                "in a container (runtime podman or docker) or leave cache out"
            )
        try:
            digests = [self._digest(e.image, i) for i, e in enumerate(task.executors)]
            inputs = self._hash_inputs(task, credentials)
        except ToolshipError as exc:  # the run itself reports it, as it always would
            log.info("task %s: no cache key (%s); it runs", row.id, exc.message)
            return None
        key = _key(task, digests, inputs)
        found = self.entries.lookup(key, reader=reader)
        hit = None
        if found is not None:
            hit = self._answer(found, key, task, inputs, digests, credentials)
        if hit is None:
            with self._lock:
                self._pending[row.id] = _Pending(key, dict(credentials))
        return hit

    def _digest(self, image: str, index: int) -> str:
        digest = pinned(image)
        if digest is not None:
            return digest
        if self._resolve is None:
            raise InvalidRequest(f"executors[{index}].image {image!r}: no image resolver")
        return self._resolve(image)

    def _hash_inputs(self, task: Task, credentials: Mapping[str, str]) -> list[InputKey]:
        """The sha256 of every input byte (content inputs: their text), read as staging reads."""
        keys = []
        with _context(credentials) as ctx, tempfile.TemporaryDirectory() as tmp:
            for i, inp in enumerate(task.inputs or []):
                if inp.content is not None:
                    sha = hashlib.sha256(inp.content.encode()).hexdigest()
                    keys.append(InputKey(inp.path, inp.type.value, (("", sha),)))
                    continue
                url = inp.url or ""
                dest = Path(tmp) / str(i)
                records = self.storage.for_url(url).fetch(url, dest, inp.type.value, ctx)
                files = tuple(sorted((r.path, r.sha256) for r in records))
                keys.append(InputKey(inp.path, inp.type.value, files))
        return keys

    def _answer(
        self,
        original_id: str,
        key: str,
        task: Task,
        inputs: Sequence[InputKey],
        digests: Sequence[str],
        credentials: Mapping[str, str],
    ) -> TaskLog | None:
        """Copy the outputs of ``original_id`` to ``task``'s URLs; None when one is gone or
        changed (the stale key is dropped)."""
        original = self.store.get(original_id)
        attempt = original.logs[-1]
        recorded = attempt.metadata or {}
        before = Task.model_validate(original.spec).outputs or []
        after = task.outputs or []
        start = now_rfc3339()
        delivered: list[OutputFileLog] = []
        written: list[tuple[str, str]] = []  # output path, sha256
        metadata = {CACHED_FROM: original_id, CACHE_KEY: key}
        with _context(credentials) as ctx, tempfile.TemporaryDirectory() as tmp:
            for n, out in enumerate(attempt.outputs):
                sha = file_hashes(recorded).get(out.path)
                copy = Path(tmp) / str(n)
                try:
                    got = self.storage.for_url(out.url).fetch(out.url, copy, "FILE", ctx)
                except ToolshipError as exc:
                    self._stale(key, original_id, f"{out.url}: {exc.message}")
                    return None
                if sha is None or got[0].sha256 != sha:
                    self._stale(key, original_id, f"{out.url} changed since it was written")
                    return None
                url = _moved(out.url, before, after)
                self.storage.for_url(url).deliver(copy, url, ctx)
                delivered.append(OutputFileLog(url=url, path=out.path, size_bytes=out.size_bytes))
                written.append((out.path, sha))
            for j, spec in enumerate(after):
                if spec.type is FileType.DIRECTORY and not any(
                    _under(o.url, before[j].url) for o in attempt.outputs
                ):
                    self.storage.for_url(spec.url).deliver_directory(spec.url, ctx)
        for inp in inputs:
            for rel, sha in inp.files:
                path = posixpath.join(inp.path, rel) if rel else inp.path
                record_hash(metadata, path, sha, output=False)
        for path, sha in written:  # after the inputs, as a worker records them
            record_hash(metadata, path, sha, output=True)
        for use, image, digest in zip(
            image_uses(recorded), [e.image for e in task.executors], digests, strict=False
        ):
            metadata.update(image_metadata(ImageUse(use.executor, image, digest, use.image_id)))
        return TaskLog(
            start_time=start,
            end_time=now_rfc3339(),
            outputs=delivered,
            metadata=metadata,
            system_logs=[
                f"answered from the result cache: the outputs of task {original_id} (same key "
                f"{key}: image digests, commands, environment, input bytes), copied; no "
                "container ran"
            ],
        )

    def _stale(self, key: str, original_id: str, why: str) -> None:
        log.info("cache key %s (task %s) is stale: %s; dropped", key, original_id, why)
        self.entries.delete(key)

    # --- at completion -------------------------------------------------------

    def asked(self, task_id: str) -> bool:
        """Whether ``task_id`` was created asking for the cache and missed (in this process)."""
        with self._lock:
            return task_id in self._pending

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._pending.pop(task_id, None)

    def remember(self, task_id: str) -> bool:
        """Store the key of ``task_id``, now COMPLETE, if it is still the key it was created
        with; whether it was stored.  Blocking."""
        with self._lock:
            pending = self._pending.pop(task_id, None)
        if pending is None:
            return False
        row = self.store.get(task_id)
        task = Task.model_validate(row.spec)
        uses = image_uses(row.logs[-1].metadata if row.logs else None)
        digests = [u.digest for u in uses]
        if len(digests) != len(task.executors) or not all(digests):
            log.info("task %s recorded no digest for every image: no cache key", task_id)
            return False
        try:
            inputs = self._hash_inputs(task, pending.credentials)
        except ToolshipError as exc:
            log.info("task %s: inputs unreadable after the run (%s): no key", task_id, exc)
            return False
        if _key(task, digests, inputs) != pending.key:
            log.info("task %s: an image or input changed while it ran: no cache key", task_id)
            return False
        self.entries.put(pending.key, task_id)
        return True


def _key(task: Task, digests: Sequence[str], inputs: Sequence[InputKey]) -> str:
    executors = [
        ExecutorKey.of(digest, e.command, e.env, e.workdir, e.stdin, e.stdout, e.stderr)
        for e, digest in zip(task.executors, digests, strict=True)
    ]
    outputs = [OutputKey(o.path, o.type.value, o.path_prefix) for o in task.outputs or []]
    return cache_key(executors, inputs, outputs, task.volumes or [])


def _under(url: str, top: str) -> bool:
    return url == top or url.startswith(top.rstrip("/") + "/")


def _moved(url: str, before: Sequence[Output], after: Sequence[Output]) -> str:
    """Where the earlier task's output file ``url`` goes for the new task: the same place
    under the new task's URL of the output at the same position (the keys match, so the
    outputs have the same paths in the same order)."""
    j = max(
        (j for j, o in enumerate(before) if _under(url, o.url)),
        key=lambda j: len(before[j].url),
    )
    rest = url[len(before[j].url.rstrip("/")) :]
    return after[j].url.rstrip("/") + rest if rest else after[j].url


@contextlib.contextmanager
def _context(credentials: Mapping[str, str]) -> Iterator[StageContext]:
    """A StageContext with its own small pool, closed on exit."""
    with ThreadPoolExecutor(4, thread_name_prefix="toolship-cache") as pool:
        yield StageContext(pool=pool, credentials=dict(credentials))
