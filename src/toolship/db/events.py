"""Who did what, in SQL: an append-only log (nothing here updates or deletes a row).

Each event is one row: when, who (the principal's name), what (``task.create``,
``user.add``, ``login`` …), on what (a task id, a user name, a token id), from which
address, and a short free-text detail.  Read newest first, a page at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, or_, select

from toolship.db.listing import decode_token, encode_token
from toolship.db.schema import events
from toolship.timeutil import now_rfc3339

__all__ = ["Event", "EventLog", "EventPage", "append_events", "event_row"]

_ADDRESS = 64  # the column's width
_DETAIL = 2000  # a detail is a line of context, not a document
_APPEND = insert(events)  # built once: every request that changes something appends


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    time: str
    actor: str
    action: str
    target: str
    address: str
    detail: str


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[Event]
    next_token: str | None


def event_row(
    actor: str, action: str, target: str = "", address: str = "", detail: str = ""
) -> dict[str, str]:
    """One event, as it is stored (now)."""
    return {
        "time": now_rfc3339(),
        "actor": actor,
        "action": action,
        "target": target,
        "address": address[:_ADDRESS],
        "detail": detail[:_DETAIL],
    }


def append_events(conn: Connection, rows: Sequence[dict[str, str]]) -> None:
    """Append events in the caller's transaction (a task's creation and its event: one)."""
    # One row as one statement: a list, even of one, goes the executemany way, which
    # costs SQLAlchemy more than the insert itself.
    conn.execute(_APPEND, rows[0] if len(rows) == 1 else list(rows))


class EventLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(
        self, actor: str, action: str, target: str = "", address: str = "", detail: str = ""
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(_APPEND, event_row(actor, action, target, address, detail))

    def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> EventPage:
        """Newest first.  ``action`` without a dot is a family: ``task`` is ``task.*``."""
        query = select(events).order_by(events.c.seq.desc()).limit(limit + 1)
        if page_token is not None:
            query = query.where(events.c.seq < decode_token(page_token))
        if actor is not None:
            query = query.where(events.c.actor == actor)
        if action is not None:
            if "." in action:
                query = query.where(events.c.action == action)
            else:
                family = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                query = query.where(
                    or_(events.c.action == action, events.c.action.like(f"{family}.%", escape="\\"))
                )
        if target is not None:
            query = query.where(events.c.target == target)
        if since is not None:
            query = query.where(events.c.time >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        found = [Event(**r._asdict()) for r in rows[:limit]]
        more = len(rows) > limit
        return EventPage(found, encode_token(found[-1].seq) if more and found else None)
