"""Task ids: short, URL-safe, sortable by creation time, unguessable enough to not collide."""

from __future__ import annotations

import secrets
import time

__all__ = ["new_batch_id", "new_task_id"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, no i l o u


def _b32(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 32)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def new_task_id() -> str:
    return _b32(int(time.time() * 1000), 9) + _b32(secrets.randbits(40), 8)


def new_batch_id() -> str:
    """Batch ids start with ``b`` so that they never look like a task id."""
    return "b" + new_task_id()
