"""The compute-node worker: a light start-up and a connection that survives a drop."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from toolship.errors import ServerUnavailable
from toolship.models import TaskLog
from toolship.records import ReportAnswer, RuntimeRecord, WorkerReport
from toolship.worker.remote import HttpReporter, ServerConnection, main, send


def test_the_worker_does_not_load_the_cli_the_sdk_or_remote_storage() -> None:
    # Every Slurm job starts a fresh worker: these would add to every task's cost.
    heavy = ["httpx", "fsspec", "click", "rich", "typer", "pydantic_settings", "sqlalchemy"]
    code = (
        "import sys, toolship.worker.remote; "
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []


class _Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str, object]] = []
    failing = 0  # answer this many requests 503, as a proxy cut from the server does
    why = b""  # the 503's body
    refusal = b""  # when set: every request is answered 409 with this body

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append((self.command, self.path, self.headers["Authorization"], body))
        data = json.dumps({"ok": True}).encode()
        if _Handler.refusal:
            self.send_response(409)
            self.send_header("Content-Length", str(len(_Handler.refusal)))
            self.end_headers()
            self.wfile.write(_Handler.refusal)
            return
        if _Handler.failing:
            _Handler.failing -= 1
            self.send_response(503)
            self.send_header("Content-Length", str(len(_Handler.why)))
            self.end_headers()
            self.wfile.write(_Handler.why)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        # Every answer closes the connection: the next request must open a new one.
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    _Handler.seen = []
    _Handler.failing = 0
    _Handler.why = b""
    _Handler.refusal = b""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/prefix"
    httpd.shutdown()
    httpd.server_close()


def test_requests_carry_the_token_and_survive_a_closed_connection(http_server: str) -> None:
    conn = ServerConnection(http_server, "tok")

    async def talk() -> list[int]:
        codes = []
        for i in range(3):
            report = WorkerReport(attempt=TaskLog(system_logs=[f"n{i}"]), runtime=RuntimeRecord())
            answer = await send(conn, "POST", f"/r/{i}", report, patience=5)
            assert ReportAnswer.model_validate_json(answer.body) == ReportAnswer(ok=True)
            codes.append(answer.status_code)
        codes.append((await send(conn, "GET", "/job", patience=5)).status_code)
        return codes

    try:
        assert asyncio.run(talk()) == [200, 200, 200, 200]
    finally:
        conn.close()

    def sent(i: int) -> dict[str, object]:
        attempt = {"logs": [], "outputs": [], "system_logs": [f"n{i}"]}
        return {"attempt": attempt, "runtime": {"warnings": [], "failed": False}}

    assert _Handler.seen == [
        ("POST", "/prefix/r/0", "Bearer tok", sent(0)),
        ("POST", "/prefix/r/1", "Bearer tok", sent(1)),
        ("POST", "/prefix/r/2", "Bearer tok", sent(2)),
        ("GET", "/prefix/job", "Bearer tok", None),
    ]


def test_a_report_held_through_an_outage_tells_the_record_so(http_server: str) -> None:
    _Handler.failing = 2
    conn = ServerConnection(http_server, "tok")
    reporter = HttpReporter(conn, "t1", attempt=3)
    attempt = TaskLog(system_logs=["submitted"])
    try:
        assert asyncio.run(reporter.update(None, attempt, RuntimeRecord()))
        assert asyncio.run(reporter.update(None, attempt, RuntimeRecord()))
    finally:
        conn.close()
    sent = [body for _, _, _, body in _Handler.seen]
    assert len(sent) == 4  # two unanswered tries, the one that got through, the next
    note = sent[2]["attempt"]["system_logs"][-1]  # type: ignore[index]
    assert note.startswith("the toolship server did not answer this attempt's worker on ")
    assert "(HTTP 503); the worker held its reports and sent them" in note
    assert sent[0]["attempt"]["system_logs"] == ["submitted"]  # type: ignore[index]
    assert sent[3]["attempt"]["system_logs"] == ["submitted", note]  # type: ignore[index]
    assert attempt.system_logs == ["submitted", note]
    assert {body["attempt_number"] for body in sent} == {3}  # type: ignore[index]


def test_what_a_failing_server_says_is_in_the_note(http_server: str) -> None:
    _Handler.failing = 1
    detail = "replica r2, which runs task t1, did not answer at http://r2:8000 (ConnectError)"
    _Handler.why = json.dumps({"detail": detail}).encode()
    conn = ServerConnection(http_server, "tok")
    attempt = TaskLog()
    try:
        assert asyncio.run(HttpReporter(conn, "t1").update(None, attempt, RuntimeRecord()))
    finally:
        conn.close()
    assert attempt.system_logs is not None
    assert f"(HTTP 503: {detail}); the worker held its reports" in attempt.system_logs[-1]


def test_a_refused_worker_stops_saying_why_not_as_a_cancel(http_server: str) -> None:
    _Handler.refusal = b'{"detail": "task t1 has no attempt in flight on this server; stop"}'
    conn = ServerConnection(http_server, "tok")
    reporter = HttpReporter(conn, "t1")
    said: list[str | None] = []
    reporter.stop = said.append
    try:
        assert not asyncio.run(reporter.update(None, TaskLog(), RuntimeRecord()))
    finally:
        conn.close()
    assert said == [
        "the toolship server refused this attempt's worker (HTTP 409): "
        '{"detail": "task t1 has no attempt in flight on this server; stop"}'
    ]


def test_an_unreachable_server_is_named_once_patience_runs_out() -> None:
    conn = ServerConnection("http://127.0.0.1:9", "tok", timeout=1)
    with pytest.raises(ServerUnavailable, match="cannot reach the toolship server"):
        asyncio.run(send(conn, "GET", "/x", patience=0.2))


def test_a_bad_server_url_says_what_to_give() -> None:
    with pytest.raises(ServerUnavailable, match=r"give --server http\(s\)://HOST:PORT"):
        ServerConnection("head:8000", "tok")


def test_the_worker_without_a_token_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TOOLSHIP_WORKER_TOKEN", raising=False)
    monkeypatch.delenv("TOOLSHIP_WORKER_TOKEN_FILE", raising=False)
    assert main(["--server", "http://127.0.0.1:9", "--task", "t1"]) == 2
    assert "TOOLSHIP_WORKER_TOKEN_FILE" in capsys.readouterr().err
