"""The web UI's tasks pages in process: filters, pages, counts, escaping, access, CSRF,
downloads, and the live streams (their generators driven on a store of their own)."""

from __future__ import annotations

import asyncio
import html
import re
import webbrowser
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.api.conftest import TASKS, Server, create, get, running, until, wait
from tests.api.principals import PRINCIPALS, by, with_users
from tests.api.test_real_worker import local
from toolship.cli.context import Ctx
from toolship.cli.ui import ui
from toolship.client import Client
from toolship.db import Store
from toolship.db.store import TaskRow
from toolship.records import RuntimeRecord
from toolship.states import TaskState
from toolship.web import live, tasks


def login(api: httpx.Client, token: str) -> str:
    """Log ``api`` in to the UI with ``token``; the session's CSRF token."""
    api.cookies.clear()
    form = api.get("/ui/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert nonce, form.text
    r = api.post("/ui/login", data={"token": token, "csrf": nonce[1], "next": "/ui/tasks"})
    assert r.status_code == 303, r.text
    page = api.get("/ui/tasks")
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert csrf, page.text
    return csrf[1]


def rows(html: str) -> list[str]:
    return re.findall(r'<tr id="task-([^"]+)">', html)


def test_the_list_filters_pages_and_counts(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "PAGE_SIZE", 3)
    with server.run() as api:
        login(api, server.tokens[0])
        made = [
            create(api, "true", name=f"align-{i}", tags={"run": "a" if i % 2 else "b"})
            for i in range(7)
        ]
        other = create(api, "exit", "3", name="other", tags={"run": "a"})
        for t in [*made, other]:
            wait(api, t)
        first = api.get("/ui/tasks", params={"tag": "run=a"})
        assert first.status_code == 200, first.text
        odd = [made[i] for i in (1, 3, 5)]
        assert rows(first.text) == [other, *reversed(odd[1:])]  # newest first
        assert 'role="search"' in first.text and "First page" not in first.text
        after = re.search(r'<a rel="next" href="([^"]+)">Next page</a>', first.text)
        assert after, first.text
        second = api.get(after[1].replace("&amp;", "&"))
        assert rows(second.text) == [odd[0]] and "First page" in second.text
        assert "Next page" not in second.text
        assert rows(api.get("/ui/tasks", params={"name": "align-", "state": "COMPLETE"}).text) \
            == list(reversed(made))[:3]  # fmt: skip
        assert rows(api.get("/ui/tasks", params={"tag": "run"}).text)[0] == other
        assert rows(api.get("/ui/tasks", params={"state": "EXECUTOR_ERROR"}).text) == [other]
        fragment = api.get("/ui/tasks/rows", params={"tag": "run=b"})
        assert "<html" not in fragment.text and rows(fragment.text) == list(reversed(made[::2]))[:3]
        counts = api.get("/ui/tasks/counts", params={"tag": "run=a"}).text
        assert re.search(r'<li data-state="COMPLETE">.*?<span class="num">3</span>', counts, re.S)
        assert re.search(r'<li data-state="EXECUTOR_ERROR">.*?>1</span>', counts, re.S)
        bad = api.get("/ui/tasks", params={"state": "DONE"})
        assert bad.status_code == 400 and "not a task state" in bad.text


def test_the_service_filter_takes_a_name_or_name_at_version(tmp_path: Path) -> None:
    from toolship.db.store import ListFilter

    store = Store.open(f"sqlite:///{tmp_path}/t.db")
    for i, tag in enumerate(["align@1", "align@2", "alignx@1"]):
        store.insert_tasks([_row(f"t{i}", tags={"toolship.service": tag})])
    ids = lambda service: [t.id for t in store.list_brief(  # noqa: E731
        ListFilter(service=service), page_size=10, page_token=None)[0]]  # fmt: skip
    assert ids("align") == ["t1", "t0"]
    assert ids("align@2") == ["t1"]
    assert store.counts(ListFilter(service="alignx")) == {TaskState.QUEUED: 1}


def test_a_script_name_and_html_in_logs_render_as_text(server: Server) -> None:
    with server.run() as api:
        login(api, server.tokens[0])
        tid = create(api, "echo", "<b>bold</b><script>x()</script>",
                     name="<script>alert(1)</script>", tags={"<i>k": "<i>v"})  # fmt: skip
        wait(api, tid)
        for path in ("/ui/tasks", f"/ui/tasks/{tid}"):
            text = api.get(path).text
            assert "<script>alert(1)</script>" not in text and "<i>" not in text, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path
        page = api.get(f"/ui/tasks/{tid}").text
        assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
        record = api.get(f"/ui/tasks/{tid}/provenance")
        assert record.status_code == 200 and record.json()["id"] == tid


def test_cancel_needs_the_csrf_token(server: Server) -> None:
    with server.run() as api:
        csrf = login(api, server.tokens[0])
        tid = create(api, "sleep", "60")
        running(api, server.fake, tid)
        page = api.get(f"/ui/tasks/{tid}").text
        assert "Cancel task" in page and 'id="task-state"' in page
        refused = api.post(f"/ui/tasks/{tid}/cancel", headers={"HX-Request": "true"})
        assert refused.status_code == 403 and "CSRF" in refused.text
        assert get(api, tid, "MINIMAL")["state"] == "RUNNING"
        headers = {"X-CSRF-Token": csrf, "HX-Request": "true"}
        ok = api.post(f"/ui/tasks/{tid}/cancel", headers=headers)
        assert ok.status_code == 200 and "Cancel requested" in ok.text
        assert wait(api, tid) == "CANCELED"


def test_another_users_task_is_missing(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # As an identity provider's users: the UI looks up only users of the server's own.
    with_users(monkeypatch, {n: replace(p, via="oidc") for n, p in PRINCIPALS.items()})
    with server.run() as api:
        doc = {"name": "alices", "executors": [{"image": "x", "command": ["echo", "hi"]}]}
        mine = api.post(TASKS, json=doc, headers=by("alice")).json()["id"]
        wait(api, mine)
        login(api, "bob-token")
        assert mine not in rows(api.get("/ui/tasks").text)
        assert mine not in rows(api.get("/ui/tasks", params={"owner": "alice"}).text)
        for path in ("", "/log?before=10", "/outputs/0", "/provenance"):
            hidden = api.get(f"/ui/tasks/{mine}{path}")
            gone = api.get(f"/ui/tasks/nosuchtask{path}")
            assert hidden.status_code == gone.status_code == 404, (path, hidden.text)
            assert hidden.text.replace(mine, "X") == gone.text.replace("nosuchtask", "X"), path
        stream = api.get("/ui/events/tasks", params={"ids": mine})
        assert stream.text == "event: done\ndata: \n\n"
        login(api, "root-token")
        assert mine in rows(api.get("/ui/tasks", params={"owner": "alice"}).text)
        assert "alices" in api.get(f"/ui/tasks/{mine}").text


@pytest.fixture
def real(server: Server) -> Server:
    server.config = {"local": {"runtime": "process", "accounting": False, "cpus": 2,
                               "memory_gb": 8}}  # fmt: skip
    return server


def test_an_output_downloads_through_the_server_and_a_swapped_link_is_refused(
    real: Server, tmp_path: Path
) -> None:
    delivered = tmp_path / "out" / "result.bin"
    body = bytes(range(256)) * 40
    with real.run(local) as api:
        login(api, real.tokens[0])
        out = {"path": "/out/result.bin", "url": f"file://{delivered}"}
        content = {"path": "/in/data", "content": body.decode("latin-1")}
        tid = create(api, "cp", "/in/data", "/out/result.bin", inputs=[content], outputs=[out])
        assert wait(api, tid) == "COMPLETE", get(api, tid)["logs"]
        expected = delivered.read_bytes()
        page = api.get(f"/ui/tasks/{tid}").text
        assert f'href="/ui/tasks/{tid}/outputs/0"' in page and "Download" in page
        got = api.get(f"/ui/tasks/{tid}/outputs/0")
        assert got.status_code == 200 and got.content == expected
        assert "result.bin" in got.headers["content-disposition"]
        assert api.get(f"/ui/tasks/{tid}/outputs/1").status_code == 404
        delivered.unlink()
        delivered.symlink_to(real.home / "ui.key")  # toolship's own file: never served
        refused = api.get(f"/ui/tasks/{tid}/outputs/0")
        assert refused.status_code == 404, refused.text
        assert "inside toolship&#39;s own home" in refused.text, refused.text


def test_the_log_tail_and_load_earlier_read_bounded_parts(real: Server) -> None:
    lines = "".join(f"line {i:06d} <tag>\n" for i in range(10_000))  # 190 000 bytes
    with real.run(local) as api:
        login(api, real.tokens[0])
        tid = create(api, "cat", "/in/log", inputs=[{"path": "/in/log", "content": lines}])
        assert wait(api, tid) == "COMPLETE", get(api, tid)["logs"]
        page = api.get(f"/ui/tasks/{tid}").text
        tail = re.search(r'<pre class="log" id="log-stdout"[^>]*>(.*?)</pre>', page, re.S)
        assert tail and tail[1].endswith("line 009999 &lt;tag&gt;\n")
        assert len(html.unescape(tail[1])) == 64 * 1024 and "line 000000" not in tail[1]
        earlier = re.search(r'id="earlier-stdout" hx-get="([^"]+)"', page)
        assert earlier, page
        more = api.get(earlier[1].replace("&amp;", "&"))
        assert more.status_code == 200 and "&lt;tag&gt;" in more.text
        assert 'hx-swap-oob="true"' in more.text and "<html" not in more.text


def _row(task_id: str, tags: dict[str, str] | None = None) -> TaskRow:
    spec = {"executors": [{"image": "x", "command": ["true"]}], "tags": tags or {}}
    return TaskRow(seq=0, id=task_id, state=TaskState.QUEUED, name=task_id,
                   creation_time="2026-01-01T00:00:00Z", priority=0, cpus=1, memory_gb=1.0,
                   gpus=0, spec=spec)  # fmt: skip


async def _next(events: AsyncIterator[bytes]) -> str:
    return (await anext(events)).decode()


def test_the_state_stream_sends_what_changed_then_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "TICK", 0.01)
    store = Store.open(f"sqlite:///{tmp_path}/t.db")
    store.insert_tasks([_row("a"), _row("b")])
    store.transition("b", TaskState.CANCELED)

    async def follow() -> None:
        events = live._states(store, ["a", "b"])
        first = {await _next(events), await _next(events)}
        assert any("event: state-a" in e and 'data-state="QUEUED"' in e for e in first)
        assert any("event: state-b" in e and 'data-state="CANCELED"' in e for e in first)
        store.transition("a", TaskState.INITIALIZING)
        changed = await _next(events)  # only a's, once it changed
        assert changed.startswith("event: state-a\n") and 'sse-swap="state-a"' in changed
        assert 'data-state="INITIALIZING"' in changed
        store.transition("a", TaskState.SYSTEM_ERROR)
        assert 'data-state="SYSTEM_ERROR"' in await _next(events)
        assert await _next(events) == "event: done\ndata: \n\n"

    asyncio.run(asyncio.wait_for(follow(), 10))


def test_the_log_stream_follows_the_capture_escaped_until_the_task_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "TICK", 0.01)
    store = Store.open(f"sqlite:///{tmp_path}/t.db")
    store.insert_tasks([_row("a")])
    attempt = tmp_path / "attempt"
    (attempt / "logs").mkdir(parents=True)
    capture = attempt / "logs" / "exec-0.stdout"
    capture.write_bytes(b"old\n")
    store.transition("a", TaskState.INITIALIZING,
                     runtime=RuntimeRecord(attempt_dir=str(attempt), phase="run"))  # fmt: skip
    store.transition("a", TaskState.RUNNING)

    async def follow() -> None:
        events = live._Follow(store, store.get("a"), 0, {"stdout": 4, "stderr": 0}).events()
        assert 'data-state="RUNNING"' in await _next(events)
        with capture.open("ab") as out:
            out.write(b"<b>new</b>\r\nmore \xc3")  # a character cut in two
        got = await _next(events)
        assert got == "event: log-stdout\ndata: &lt;b&gt;new&lt;/b&gt;&#13;\ndata: more \n\n"
        with capture.open("ab") as out:
            out.write(b"\xa9 end\n")
        store.transition("a", TaskState.COMPLETE)
        rest = [await _next(events) for _ in range(3)]
        assert 'data-state="COMPLETE"' in rest[0]
        assert rest[1] == "event: log-stdout\ndata: \u00e9 end\ndata: \n\n"
        assert rest[2] == "event: done\ndata: \n\n"

    asyncio.run(asyncio.wait_for(follow(), 10))


def test_the_task_page_follows_a_running_task_over_one_stream(server: Server) -> None:
    with server.run() as api:
        login(api, server.tokens[0])
        tid = create(api, "sleep", "60")
        running(api, server.fake, tid)
        page = api.get(f"/ui/tasks/{tid}").text
        assert page.count("sse-connect=") == 1
        connect = re.search(r'sse-connect="([^"]+)"', page)
        assert connect and connect[1].startswith(f"/ui/events/tasks/{tid}/log?executor=0")
        assert 'sse-swap="log-stdout"' in page and 'sse-swap="task-state"' in page
        listing = api.get("/ui/tasks").text
        assert listing.count("sse-connect=") == 1 and f"ids={tid}" in listing
        server.clock.advance(61)
        assert until("complete", lambda: get(api, tid, "MINIMAL")["state"] == "COMPLETE")
        done = api.get(connect[1].replace("&amp;", "&"))
        assert 'data-state="COMPLETE"' in done.text
        assert done.text.endswith("event: done\ndata: \n\n")
        assert "sse-connect=" not in api.get(f"/ui/tasks/{tid}").text


def test_toolship_ui_prints_a_one_time_link_that_logs_in_once(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or False)
    with server.run() as api:
        client = Client("http://toolship.test", server.tokens[0], transport=api._transport)
        ctx = Ctx(server=None, token=None, _client=client)
        printed = CliRunner().invoke(ui, ["--no-browser"], obj=ctx, catch_exceptions=False)
        assert printed.exit_code == 0 and not opened, printed.output
        link = printed.output.split()[-1]
        assert link.startswith("http://toolship.test/ui/login/once?code=")
        api.cookies.clear()
        first = api.get(link)
        assert first.status_code == 303 and first.headers["location"] == "/ui/tasks"
        assert api.get("/ui/tasks").status_code == 200
        api.cookies.clear()
        assert api.get(link).status_code == 401  # used already
        no_browser_here = CliRunner().invoke(ui, [], obj=ctx, catch_exceptions=False)
        assert len(opened) == 1 and opened[0] in no_browser_here.output  # printed instead
