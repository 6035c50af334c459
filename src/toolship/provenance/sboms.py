"""One SBOM per image digest, made once: when a service version is registered, when an
attempt first runs a digest, or when someone asks.

Registration and first use only queue the digest: one background thread makes the
SBOMs one after the other, so a task never waits for syft and two scans never compete
for the CPUs.  A request waits for its own SBOM (the API calls it in a thread).  A
digest whose SBOM could not be made keeps a record saying why; a request makes it
again (the image may be loaded by now), the automatic paths leave it be.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Protocol

from toolship.db.sboms import SbomStore
from toolship.errors import ToolshipError
from toolship.provenance.sbom import Scanner
from toolship.supply.images import ImageUse
from toolship.supply.purls import components_of
from toolship.supply.sboms import StoredSbom
from toolship.timeutil import now_rfc3339

__all__ = ["ImageFacts", "Resolver", "Sboms"]

log = logging.getLogger(__name__)


class ImageFacts(Protocol):
    """What the catalog's image tools say of a reference (``catalog.images.ImageFacts``)."""

    @property
    def repository(self) -> str: ...

    @property
    def digest(self) -> str: ...

    @property
    def image_id(self) -> str: ...


class Resolver(Protocol):
    def inspect(self, reference: str) -> ImageFacts: ...


class Sboms:
    def __init__(
        self, store: SbomStore, scanner: Scanner, images: Resolver, *, automatic: bool = True
    ) -> None:
        self.store = store
        self.scanner = scanner
        self.images = images
        self.automatic = automatic  # images.sboms_on_use: at registration and first use
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._queued: set[str] = set()  # digests waiting (registration)
        self._pending = 0  # items queued or being handled
        self._queue: queue.SimpleQueue[ImageUse | str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    # --- on request (blocking: call in a thread) ---------------------------

    def for_image(self, reference: str) -> tuple[StoredSbom, bool]:
        """The SBOM of ``reference`` (a tag is resolved to its current digest), made now if
        missing or failed before; True when made by this call."""
        facts = self.images.inspect(reference)
        use = ImageUse(0, f"{facts.repository}@{facts.digest}", facts.digest, facts.image_id)
        return self.ensure(use, again=True)

    def ensure(self, use: ImageUse, *, again: bool = False) -> tuple[StoredSbom, bool]:
        """The SBOM of ``use.digest``, made from this host's copy of the image when none is
        stored (``again``: also when the stored record is a failure)."""
        with self._lock_of(use.digest):
            try:
                held = self.store.get(use.digest)
            except ToolshipError:
                held = None
            if held is not None and not (again and held.error):
                return held, False
            made = self._make(use)
            if not self._closed:
                parts = components_of(made.cyclonedx) if made.cyclonedx else []
                self.store.save(made, parts)
            return made, True

    def _make(self, use: ImageUse) -> StoredSbom:
        name = use.repository
        try:
            docs = self.scanner.scan(use.image_id or use.pinned, name=name, digest=use.digest)
        except ToolshipError as exc:
            log.warning("no SBOM of %s: %s", use.pinned, exc.message)
            return StoredSbom(use.digest, use.pinned, use.image_id, now_rfc3339(), "syft",
                              error=exc.message)  # fmt: skip
        return StoredSbom(
            digest=use.digest,
            image=use.pinned,
            image_id=use.image_id,
            made=now_rfc3339(),
            tool=docs.tool,
            cyclonedx=docs.cyclonedx,
            cyclonedx14=docs.cyclonedx14,
            spdx=docs.spdx,
        )

    def _lock_of(self, digest: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(digest, threading.Lock())

    # --- in the background (never blocks the caller) -----------------------

    def later(self, use: ImageUse) -> None:
        """Queue ``use``'s SBOM (a registered service version's image)."""
        if self.automatic and use.digest:
            self._put(use)

    def after_task(self, task_id: str) -> None:
        """Queue the SBOMs of the digests a finished task ran that have none yet (the
        engine calls it on its loop: the lookup runs in the background thread)."""
        if self.automatic:
            self._put(task_id)

    def _put(self, item: ImageUse | str) -> None:
        with self._guard:
            if self._closed:
                return
            if isinstance(item, ImageUse):
                if item.digest in self._queued:
                    return
                self._queued.add(item.digest)
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="sboms", daemon=True)
                self._thread.start()
        self._queue.put(item)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                uses = self.store.unmade(item) if isinstance(item, str) else [item]
                for use in uses:
                    if self._closed:
                        return
                    self.ensure(use)
            except Exception:
                log.exception("making the SBOM of %s failed", item)
            finally:
                with self._guard:
                    self._pending -= 1
                    if isinstance(item, ImageUse):
                        self._queued.discard(item.digest)

    def close(self) -> None:
        """Stop: a scan in flight is ended (when the scanner can) and not stored."""
        with self._guard:
            self._closed = True
        self._queue.put(None)
        self.scanner.stop()

    def idle(self) -> bool:
        """Nothing queued nor being made (tests poll it)."""
        with self._guard:
            return self._pending == 0
