from __future__ import annotations

import toolship


def test_public_surface_is_explicit() -> None:
    assert set(toolship.__all__) == {
        "Batch", "Client", "Task", "TaskState", "__version__", "ToolshipError", "InvalidRequest",
        "ResourcesUnavailable", "Unauthorized", "Forbidden", "NotFound", "ConfigError",
        "RuntimeUnavailable", "StagingError", "ServerUnavailable",
    }  # fmt: skip
    for name in toolship.__all__:
        assert hasattr(toolship, name)


def test_errors_form_one_tree() -> None:
    for name in toolship.__all__:
        obj = getattr(toolship, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, toolship.ToolshipError)
