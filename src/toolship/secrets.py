"""The server's own secrets and private files: tokens, the worker secret, owner-only writes.

Below the API and the backends: the API reads the tokens, the Slurm backend derives
each remote worker's token from the secret, and both write files only the server's
user may read.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from toolship.config import Settings

log = logging.getLogger(__name__)

# toolship's files in its home: the database (and its WAL), the API token, the worker
# secret, the key that seals per-task credentials, the log and the embedded server's state.
PRIVATE_FILES = ("toolship.db", "toolship.db-wal", "toolship.db-shm", "token", "worker.secret",
                 "secrets.key", "server.log", "server.json", "server.lock")  # fmt: skip

__all__ = [
    "PRIVATE_FILES",
    "ensure_secret",
    "ensure_token_file",
    "read_tokens",
    "secure_home",
    "worker_token",
    "write_private",
]


def read_tokens(path: Path) -> list[str]:
    return [t.strip() for t in path.read_text().splitlines() if t.strip()]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read or write (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)  # O_CREAT's mode does not apply to a file that already existed


def ensure_token_file(path: Path) -> str:
    """Create a random token in a file only the owner can read; return the token."""
    if path.exists():
        tokens = read_tokens(path)
        if tokens:
            return tokens[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token


def ensure_secret(path: Path) -> bytes:
    """The server secret that worker tokens derive from (created once, mode 0600)."""
    if path.exists():
        data = path.read_bytes().strip()
        if data:
            return data
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    write_private(path, secret + "\n")
    return secret.encode()


def secure_home(settings: Settings) -> None:
    """Only the server's user enters its home and task directories or reads its files.

    Run at every start, so a home made by an older toolship (0755, files 0644) is fixed.
    """
    for folder in (settings.home, settings.work_dir):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
    private = [settings.home / name for name in PRIVATE_FILES]
    if settings.slurm.secret_file is not None:
        private.append(settings.slurm.secret_file)
    for path in private:
        with contextlib.suppress(FileNotFoundError):
            path.chmod(0o600)
    token_file = settings.server.token_file
    if token_file is not None and token_file.is_file() and token_file.stat().st_mode & 0o077:
        log.warning("server.token_file %s can be read by other users; chmod 600 it", token_file)


def worker_token(secret: bytes, task_id: str) -> str:
    """The token of the remote worker of one task: good for that task's worker routes only.

    Derived, not stored: HMAC-SHA256 of the task id under the server secret.
    """
    return hmac.new(secret, f"worker:{task_id}".encode(), "sha256").hexdigest()
