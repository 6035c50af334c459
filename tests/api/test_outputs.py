"""An output file read back through the server (the SDK and the API): the client needs no
access of its own to where the task delivered it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import TOKEN, Server, create, get, wait
from tests.api.test_real_worker import local
from toolship.client import Client
from toolship.errors import NotFound


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
