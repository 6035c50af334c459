"""A database that is away for a moment (locked by another process, restarting) loses no
task: a start that met it is tried again, not left QUEUED until the next restart.

The database's own outages run against a real server in tests/resilience/
(test_sqlite_lock.py, test_postgres_restart.py); here the one read a start needs fails
once, which no real outage can aim at.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from tests.api.conftest import Server, create, running, wait
from toolship.db import Store
from toolship.engine import engine as engine_module


def test_a_start_that_meets_an_unavailable_database_is_tried_again(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A task created here starts from the row kept since its creation; one that waited
    # for a retry, or among more than the engine keeps, is read back: that read fails.
    monkeypatch.setattr(engine_module, "_KEPT_ROWS", 0)
    with server.run(cpus=1) as api:
        first = create(api, "sleep", "30")
        second = create(api, "echo", "later")  # waits for the one core
        running(api, server.fake, first)
        refused: list[str] = []
        real_get = Store.get

        def get(store: Store, task_id: str, **kwargs: Any) -> Any:
            if task_id == second and not refused:
                refused.append(task_id)
                raise OperationalError("SELECT …", {}, Exception("database is locked"))
            return real_get(store, task_id, **kwargs)

        monkeypatch.setattr(Store, "get", get)
        server.clock.advance(30)  # the first ends: the engine starts the second
        assert wait(api, first) == "COMPLETE"
        assert wait(api, second) == "COMPLETE"
        assert refused == [second]
