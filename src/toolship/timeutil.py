"""RFC 3339 timestamps, as TES wants them."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["now_rfc3339", "parse_rfc3339"]


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
