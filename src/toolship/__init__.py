"""toolship: run containerized tools next to the data.

The Python SDK's public surface::

    from toolship import Client
    task = Client().run("localhost/toolship-busybox", ["echo", "hi"])
"""

from __future__ import annotations

__version__ = "0.1.0"

from toolship.client import Batch, Client, Task
from toolship.errors import (
    ConfigError,
    Forbidden,
    InvalidRequest,
    NotFound,
    ResourcesUnavailable,
    RuntimeUnavailable,
    ServerUnavailable,
    StagingError,
    ToolshipError,
    Unauthorized,
)
from toolship.states import TaskState

__all__ = [
    "Batch",
    "Client",
    "ConfigError",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "ResourcesUnavailable",
    "RuntimeUnavailable",
    "ServerUnavailable",
    "StagingError",
    "Task",
    "TaskState",
    "ToolshipError",
    "Unauthorized",
    "__version__",
]
