"""Persistence: table definitions, migrations, and the only module that issues SQL (store)."""

from __future__ import annotations

from toolship.db.store import BatchRow, Page, Store, TaskRow, TaskSummary

__all__ = ["BatchRow", "Page", "Store", "TaskRow", "TaskSummary"]
