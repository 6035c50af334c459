"""Quotas in the SDK: a user's limits, what counts against them, its fair-share usage."""

from __future__ import annotations

from toolship.client.base import BaseClient
from toolship.models import QuotaReport

__all__ = ["Quotas"]


class Quotas(BaseClient):
    def quota(self, user: str | None = None) -> QuotaReport:
        """Your limits and use (an admin may name any ``user``; others get a 403)."""
        params = {"user": user} if user else None
        return self._read(QuotaReport, "GET", "/api/v1/quota", params=params)
