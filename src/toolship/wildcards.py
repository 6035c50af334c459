"""The glob characters that make a path a pattern, defined once.

Output paths, batch ``over`` patterns and storage listings all decide "is this a
pattern, and where does its fixed part end" with these two functions.
"""

from __future__ import annotations

__all__ = ["WILDCARD_CHARS", "first_wildcard", "has_wildcard"]

WILDCARD_CHARS = frozenset("*?[")


def has_wildcard(path: str) -> bool:
    return any(c in WILDCARD_CHARS for c in path)


def first_wildcard(path: str) -> int:
    """The index of the first wildcard character, or ``len(path)`` when there is none."""
    return min((path.find(c) for c in WILDCARD_CHARS if c in path), default=len(path))
