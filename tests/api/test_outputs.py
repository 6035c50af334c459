"""An output file read back through the server (the SDK and the API): the client needs no
access of its own to where the task delivered it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import TOKEN, Server, create, get, until, wait
from tests.api.test_real_worker import local
from toolship.client import Client
from toolship.errors import NotFound
from toolship.states import TaskState


@pytest.fixture
def real(server: Server) -> Server:
    server.config = {"local": {"runtime": "process", "accounting": False, "cpus": 2,
                               "memory_gb": 8}}  # fmt: skip
    return server


def test_an_output_reads_back_through_the_api_and_the_sdk(real: Server, tmp_path: Path) -> None:
    delivered = tmp_path / "results" / "score.json"
    out = {"path": "/out/score.json", "url": f"file://{delivered}"}
    with real.run(local) as api:
        score = {"path": "/in/score", "content": '{"r2": 0.49}\n'}
        tid = create(api, "cp", "/in/score", "/out/score.json", inputs=[score], outputs=[out])
        assert wait(api, tid) == "COMPLETE", get(api, tid)["logs"]
        got = api.get(f"/api/v1/tasks/{tid}/outputs/0")
        assert got.status_code == 200 and got.content == b'{"r2": 0.49}\n'
        assert "score.json" in got.headers["content-disposition"]
        missing = api.get(f"/api/v1/tasks/{tid}/outputs/1")
        assert missing.status_code == 404
        assert "has no output file 1" in missing.json()["detail"], missing.text
        client = Client("http://toolship.test", TOKEN, transport=api._transport)
        assert client.task(tid).output(0) == b'{"r2": 0.49}\n'
        with pytest.raises(NotFound, match="has no output file 3"):
            client.task(tid).output(3)


def test_as_completed_gives_each_task_as_it_ends_first_come_first(server: Server) -> None:
    """A search loop's "the next trial that ends": the first to end comes first."""
    with server.run(cpus=8) as api:
        fake = server.fake
        long, short, middle = (create(api, "sleep", s) for s in ("30", "10", "20"))
        until("all three running", lambda: len(fake.sleeping()) == 3)
        client = Client("http://toolship.test", TOKEN, transport=api._transport)
        fake.clock.advance(10)
        ending = client.as_completed([long, short, middle], timeout=60)
        assert next(ending) == (short, TaskState.COMPLETE)
        fake.clock.advance(10)
        assert next(ending) == (middle, TaskState.COMPLETE)
        fake.clock.advance(10)
        assert next(ending) == (long, TaskState.COMPLETE)
        assert next(ending, None) is None
        stuck = create(api, "sleep", "100")
        with pytest.raises(TimeoutError, match=r"1 of 1 tasks were still running after 0\.5 s"):
            list(client.as_completed([stuck], timeout=0.5))
