"""The HTTP API: GA4GH TES v1.1 routes and toolship's own routes, one FastAPI app."""

from __future__ import annotations

from toolship.api.app import create_app

__all__ = ["create_app"]
