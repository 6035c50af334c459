"""Per-task credentials sealed with a server key before they reach the database.

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``): a stolen
database, backup or WAL file shows no credential without the key, which lives
in its own owner-only file (``secrets.key`` in the server's home).  Values
are opened only when a worker needs them, never when a task is read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["NONE", "SEALER", "Sealer"]

log = logging.getLogger(__name__)

SEALER = "secrets.key"  # the key's file in the server's home
NONE = "{}"  # the column's value for a task without credentials (as before sealing)


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def ephemeral(cls) -> Sealer:
        """A key that lives as long as this process (tests, tools that never restart)."""
        return cls(Fernet.generate_key())

    @classmethod
    def from_file(cls, path: Path) -> Sealer:
        """The key in ``path``, created once with mode 0600 (two starting servers agree)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key() + b"\n")
        path.chmod(0o600)
        return cls(path.read_bytes().strip())

    def seal(self, secrets: Mapping[str, str]) -> str:
        if not secrets:
            return NONE
        return self._fernet.encrypt(json.dumps(dict(secrets)).encode()).decode()

    def open(self, sealed: str) -> dict[str, str]:
        """The credentials in ``sealed``; none when it was sealed under another key."""
        if not sealed or sealed == NONE:
            return {}
        if is_plain(sealed):
            return dict(json.loads(sealed))
        try:
            return dict(json.loads(self._fernet.decrypt(sealed.encode())))
        except InvalidToken:
            log.warning(
                "per-task credentials sealed under another key cannot be read (was the "
                "server's secrets.key replaced?); the task runs without them"
            )
            return {}


def is_plain(value: str) -> bool:
    """A value written before credentials were sealed (plain JSON)."""
    return value.startswith("{") and value != NONE
