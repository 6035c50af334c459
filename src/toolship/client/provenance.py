"""Provenance in the SDK: :class:`Provenances`, mixed into :class:`toolship.client.Client`:
a task's record (images by digest, commands, environment, times, inputs and outputs with
their sha256) and the Process Run Crates of a task or a batch."""

from __future__ import annotations

from urllib.parse import quote

from toolship.client.base import BaseClient
from toolship.supply.record import Provenance

__all__ = ["Provenances"]

_CRATE_TIMEOUT = 300.0  # a large batch's crate is built on the server


class Provenances(BaseClient):
    def provenance(self, task_id: str) -> Provenance:
        """How the task's results were made, attempt by attempt."""
        return self._read(Provenance, "GET", f"/api/v1/tasks/{quote(task_id, safe='')}/provenance")

    def crate(self, task_id: str, *, license: str | None = None) -> bytes:
        """The task's Process Run Crate (RO-Crate 1.1), as zip bytes."""
        return self._crate(f"/api/v1/tasks/{quote(task_id, safe='')}/crate", license)

    def batch_crate(self, batch_id: str, *, license: str | None = None) -> bytes:
        """One Process Run Crate of every member of the batch, as zip bytes."""
        return self._crate(f"/api/v1/batches/{quote(batch_id, safe='')}/crate", license)

    def _crate(self, path: str, license: str | None) -> bytes:
        params = {"license": license} if license else None
        return self._send("GET", path, params=params, timeout=_CRATE_TIMEOUT).content
