"""Task ids: short, URL-safe, sortable by creation time, unguessable enough to not collide."""

from __future__ import annotations

import base64
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


_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())
_last_ms = -1
_last_prefix = ""


def new_task_id() -> str:
    global _last_ms, _last_prefix
    ms = int(time.time() * 1000)
    if ms != _last_ms:  # a bulk creation makes thousands of ids in the same millisecond
        _last_ms, _last_prefix = ms, _b32(ms, 9)
    # 40 random bits are exactly 8 base32 digits.
    rand = base64.b32encode(secrets.token_bytes(5)).translate(_TO_CROCKFORD).decode()
    return _last_prefix + rand


def new_batch_id() -> str:
    """Batch ids start with ``b`` so that they never look like a task id."""
    return "b" + new_task_id()
