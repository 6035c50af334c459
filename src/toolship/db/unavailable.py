"""The database busy or gone, said as such: a 503 that names the cause and the fix.

SQLite locked by another process for longer than its busy timeout, or PostgreSQL
restarting, reaches a route as SQLAlchemy's ``OperationalError`` ("database is
locked", "connection refused", "terminating connection"); unanswered, that is a 500
with no word on what to do.  The API turns it into :class:`ServerUnavailable`.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from toolship.errors import ServerUnavailable

__all__ = ["DatabaseFailure", "unavailable"]

# What a database that is locked, restarting or unreachable raises (psycopg's connection
# errors and SQLite's "database is locked" alike): the API need not import SQLAlchemy.
DatabaseFailure = OperationalError


def unavailable(exc: DatabaseFailure, url: str) -> ServerUnavailable:
    """The 503 for ``exc``, a failure of the database at ``url`` (its password hidden)."""
    cause = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        return ServerUnavailable(
            f"the database {path} is busy: {cause} (another process holds a lock on it "
            "for longer than database.busy_timeout_seconds): retry in a moment, and if it "
            f"lasts find the process that holds it (fuser {path})"
        )
    where = parsed.render_as_string(hide_password=True)
    return ServerUnavailable(
        f"the database {where} is unavailable: {cause}; retry in a moment, and if it "
        "lasts check that the database server runs and accepts connections"
    )
