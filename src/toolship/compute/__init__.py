"""Compute backends: where attempts run.  One module per backend."""

from __future__ import annotations

from toolship.compute.local import LocalBackend

__all__ = ["LocalBackend"]
