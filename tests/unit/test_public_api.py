from __future__ import annotations

import subprocess
import sys

import toolship


def test_public_surface_is_explicit() -> None:
    assert set(toolship.__all__) == {
        "Batch", "Client", "Task", "TaskState", "View", "__version__", "ToolshipError",
        "InvalidRequest", "ResourcesUnavailable", "Unauthorized", "Forbidden", "NotFound",
        "Conflict", "ConfigError", "RuntimeUnavailable", "StagingError", "ServerUnavailable",
        "BuildFailed", "TooManyRequests",
    }  # fmt: skip
    for name in toolship.__all__:
        assert hasattr(toolship, name)


def test_errors_form_one_tree() -> None:
    for name in toolship.__all__:
        obj = getattr(toolship, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, toolship.ToolshipError)


SERVER_SIDE = (
    "fastapi", "uvicorn", "sqlalchemy",
    "toolship.engine", "toolship.api", "toolship.db", "toolship.catalog",
)  # fmt: skip


def test_the_sdk_loads_nothing_of_the_server() -> None:
    # A fresh interpreter: this one has loaded the server for other tests.  The embedded
    # module is what Client() with no URL loads; it starts the server in another process.
    script = (
        "import sys, toolship\n"
        "from toolship import Client, View\n"
        "import toolship.embedded\n"
        "Client('http://127.0.0.1:9', 'token').close()\n"
        f"server_side = {SERVER_SIDE!r}\n"
        "print(sorted(m for m in sys.modules for p in server_side\n"
        "             if m == p or m.startswith(p + '.')))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
