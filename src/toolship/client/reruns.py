"""Exact reruns in the SDK: :class:`Reruns`, mixed into :class:`toolship.client.Client`."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from toolship.client.base import BaseClient
from toolship.supply.reruns import RerunInfo, RerunRequest, Verification

__all__ = ["Reruns"]


class Reruns(BaseClient):
    def rerun(
        self,
        task_id: str,
        *,
        allow_changed_inputs: bool = False,
        out_prefix: str | None = None,
        outputs: Mapping[str, str] | None = None,
    ) -> RerunInfo:
        """Rerun a task exactly: its recorded image digests, on its inputs' recorded bytes.

        Its outputs go beside the original's in a ``rerun-XXXXXXXX/`` folder, under
        ``out_prefix``, or to ``outputs`` (URL by container path).  Wait for it with
        :meth:`wait`; compare its outputs with :meth:`verify`.
        """
        body = RerunRequest(
            allow_changed_inputs=allow_changed_inputs,
            out_prefix=out_prefix,
            outputs=dict(outputs or {}),
        )
        return self._read(
            RerunInfo,
            "POST",
            f"/api/v1/tasks/{quote(task_id, safe='')}/rerun",
            json=body.model_dump(mode="json", exclude_defaults=True),
        )

    def verify(self, task_id: str, against: str | None = None) -> Verification:
        """A rerun's output files against the original's (or ``against``'s), by sha256."""
        return self._read(
            Verification,
            "GET",
            f"/api/v1/tasks/{quote(task_id, safe='')}/verify",
            params={"against": against} if against else None,
        )
