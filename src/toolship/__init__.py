"""toolship: run containerized tools next to the data.

The Python SDK's public surface::

    from toolship import Client
    task = Client().run("localhost/toolship-busybox", ["echo", "hi"])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from toolship.errors import (
    BuildFailed,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    ResourcesUnavailable,
    RuntimeUnavailable,
    ServerUnavailable,
    StagingError,
    ToolshipError,
    TooManyRequests,
    Unauthorized,
)
from toolship.states import TaskState

if TYPE_CHECKING:
    from toolship.client import Batch, Client, Task
    from toolship.models import View

_LAZY = {"Batch": "client", "Client": "client", "Task": "client", "View": "models"}


def __getattr__(name: str) -> Any:
    # The SDK (httpx, the models) loads on first use, so a compute-node worker or a
    # server that never touches it does not pay its import time.
    if name in _LAZY:
        module = importlib.import_module(f"toolship.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'toolship' has no attribute {name!r}")


__all__ = [
    "Batch",
    "BuildFailed",
    "Client",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "ResourcesUnavailable",
    "RuntimeUnavailable",
    "ServerUnavailable",
    "StagingError",
    "Task",
    "TaskState",
    "TooManyRequests",
    "ToolshipError",
    "Unauthorized",
    "View",
    "__version__",
]
