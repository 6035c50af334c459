"""Write-behind of the attempts' reports against a real SQLite store: fewer writes, same rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from toolship.db import Store, TaskRow
from toolship.engine.writer import ReportWriter
from toolship.models import TaskLog
from toolship.records import RuntimeRecord
from toolship.states import IllegalTransition, TaskState
from toolship.timeutil import now_rfc3339

S = TaskState
R = RuntimeRecord


def log(text: str) -> TaskLog:
    return TaskLog(system_logs=[text])


def _store(tmp_path: Path, *states: TaskState) -> tuple[Store, list[str]]:
    store = Store.open(f"sqlite:///{tmp_path / 'toolship.db'}")
    rows = [
        TaskRow(
            seq=0, id=f"task{i}", state=state, name=None, creation_time=now_rfc3339(),
            priority=0, cpus=1, memory_gb=0.0, gpus=0, spec={"executors": []},
            secrets={"s3_secret_access_key": "x"},
        )
        for i, state in enumerate(states)
    ]  # fmt: skip
    store.insert_tasks(rows)
    return store, [r.id for r in rows]


def test_unwaited_reports_are_written_with_the_next_waited_one(tmp_path: Path) -> None:
    store, (tid,) = _store(tmp_path, S.QUEUED)

    async def attempt() -> bool:
        writer = ReportWriter(store, linger=60)
        assert await writer.write(tid, S.INITIALIZING, [log("1")], R(), wait=False)
        assert await writer.write(tid, S.RUNNING, [log("2")], R(phase="run"), wait=False)
        assert store.get_state(tid) is S.QUEUED  # nothing written yet
        return await writer.write(tid, None, [log("3")], R(launching=0), wait=True)

    assert asyncio.run(attempt()) is True
    row = store.get(tid)
    assert row.state is S.RUNNING
    assert row.logs == [log("3")] and row.runtime == R(launching=0)


def test_a_refused_change_is_told_to_the_next_waited_report(tmp_path: Path) -> None:
    store, (tid,) = _store(tmp_path, S.CANCELED)

    async def attempt() -> tuple[bool, bool]:
        writer = ReportWriter(store, linger=0)
        await writer.write(tid, S.INITIALIZING, [], R(), wait=False)
        await asyncio.sleep(0.05)  # written alone, after the linger: refused
        refused = await writer.write(tid, None, [log("kept")], R(), wait=True)
        later = await writer.write(tid, None, [log("kept")], R(), wait=True)
        return refused, later

    assert asyncio.run(attempt()) == (False, True)
    row = store.get(tid)
    assert row.state is S.CANCELED
    assert row.logs == [log("kept")]  # the log of what happened is kept anyway


def test_a_refused_chain_still_lands_its_allowed_final_state(tmp_path: Path) -> None:
    store, (tid,) = _store(tmp_path, S.CANCELING)

    async def attempt() -> bool:
        writer = ReportWriter(store)
        await writer.write(tid, S.RUNNING, [], R(), wait=False)
        return await writer.write(tid, S.CANCELED, [], R(phase="done"), wait=True)

    assert asyncio.run(attempt()) is False  # RUNNING was refused
    row = store.get(tid)
    assert row.state is S.CANCELED
    assert row.secrets == {}  # final: per-task credentials are wiped


def test_a_chain_the_state_table_lacks_is_an_error(tmp_path: Path) -> None:
    store, (tid,) = _store(tmp_path, S.QUEUED)

    async def attempt() -> None:
        writer = ReportWriter(store)
        await writer.write(tid, S.INITIALIZING, [], R(), wait=False)
        await writer.write(tid, S.QUEUED, [], R(), wait=False)
        await writer.write(tid, S.COMPLETE, [], R(), wait=True)

    with pytest.raises(IllegalTransition):
        asyncio.run(attempt())
    assert store.get_state(tid) is S.QUEUED


def test_reports_wait_for_a_locked_database_and_lose_nothing(tmp_path: Path) -> None:
    import sqlite3

    store, (tid,) = _store(tmp_path, S.QUEUED)
    store.engine.dispose()
    store = Store.open(f"sqlite:///{tmp_path / 'toolship.db'}", busy_timeout=0.05)
    holder = sqlite3.connect(tmp_path / "toolship.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's lock, outlasting the busy timeout

    async def attempt() -> bool:
        writer = ReportWriter(store, linger=0)
        assert await writer.write(tid, S.INITIALIZING, [log("1")], R(), wait=False)
        waited = asyncio.ensure_future(writer.write(tid, S.RUNNING, [log("2")], R(), wait=True))
        await asyncio.sleep(0.3)  # several tries fail meanwhile
        assert not waited.done() and store.get_state(tid) is S.QUEUED
        holder.execute("ROLLBACK")
        return await waited

    assert asyncio.run(attempt()) is True
    row = store.get(tid)
    assert row.state is S.RUNNING and row.logs == [log("2")]
