"""Compute backends: where attempts run.  One module per backend, listed here."""

from __future__ import annotations

from toolship.compute.base import Attempt, Backend, RemoteAttempt
from toolship.compute.local import LocalBackend
from toolship.config import Settings
from toolship.errors import ConfigError
from toolship.storage import StorageRegistry

__all__ = ["BACKENDS", "Attempt", "Backend", "LocalBackend", "RemoteAttempt", "make_backend"]

BACKENDS = ("local", "slurm")


def make_backend(settings: Settings, storage: StorageRegistry) -> Backend:
    if settings.backend == "local":
        return LocalBackend(settings, storage)
    if settings.backend == "slurm":
        from toolship.compute.slurm import SlurmBackend

        return SlurmBackend(settings)
    raise ConfigError(
        f"unknown backend {settings.backend!r}; known backends: {', '.join(BACKENDS)}"
    )
