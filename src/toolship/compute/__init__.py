"""Compute backends: where attempts run.  One module per backend, listed here."""

from __future__ import annotations

from collections.abc import Callable

from toolship.compute.base import Attempt, Backend, RemoteAttempt
from toolship.compute.local import LocalBackend
from toolship.config import Settings
from toolship.errors import ConfigError
from toolship.storage import StorageRegistry

__all__ = [
    "BACKENDS",
    "Attempt",
    "Backend",
    "BackendFactory",
    "LocalBackend",
    "RemoteAttempt",
    "make_backend",
]

BACKENDS = ("local", "slurm")

# How the app builds the backend it hands to the engine (tests hand in a fake's).
BackendFactory = Callable[[Settings, StorageRegistry], Backend]


def make_backend(settings: Settings, storage: StorageRegistry) -> Backend:
    if settings.backend == "local":
        return LocalBackend(settings, storage)
    if settings.backend == "slurm":
        from toolship.compute.slurm import SlurmBackend

        return SlurmBackend(settings)
    raise ConfigError(
        f"unknown backend {settings.backend!r}; known backends: {', '.join(BACKENDS)}"
    )
