"""Write-behind for the attempts' reports: fewer, larger database transactions.

An attempt reports several times (starting, running, launching, launched, exited,
finished).  One transaction per report made the database the bottleneck for short
tasks.  Here a report the worker may pass before it is durable (the pid of a
launched executor, an executor's exit, the outputs phase) only queues up; each
task's queued reports become one change (its state changes in order, its latest
log and runtime record, serialised once).  A report the worker must not pass before
it is durable — a state change that gates work, the intent to launch an executor,
the final state — writes everything queued at once, in one transaction, before
``write`` returns (no extra turn of the event loop on a task's critical path).
Queued reports of tasks that make no such report are written after ``linger``
seconds, many tasks per transaction.  So a short task costs two statements: its
INITIALIZING, RUNNING and launch record in one, its pid, exit and final state in
another.

A kill -9 loses at most the queued reports of the last ``linger`` seconds; the
worker never acts on one before a waited report has made it durable, so a
restarted server finds every attempt where the database says it is.

A database that is locked by another process or restarting (``DatabaseFailure``)
loses nothing either: the transaction was rolled back, so the reports stay queued
and are written every ``RETRY_SECONDS`` until it answers; a worker waiting on one
waits that long, and its attempt goes on once it is written.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from toolship.db import Store
from toolship.db.store import Change
from toolship.db.unavailable import DatabaseFailure
from toolship.models import TaskLog
from toolship.records import RuntimeRecord
from toolship.states import TaskState, is_final

__all__ = ["ReportWriter"]

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.25  # how often reports are tried again while the database is unavailable


@dataclass
class _Pending:
    logs: list[TaskLog]
    runtime: RuntimeRecord
    states: list[TaskState] = field(default_factory=list)
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)


class ReportWriter:
    def __init__(self, store: Store, *, linger: float = 0.02) -> None:
        self.store = store
        self.linger = linger
        self._pending: dict[str, _Pending] = {}
        self._refused: set[str] = set()  # a state change of theirs was refused, unawaited
        self._timer: asyncio.TimerHandle | None = None
        self._unavailable = False  # the last write failed: the timer tries again

    async def write(
        self,
        task_id: str,
        state: TaskState | None,
        logs: list[TaskLog],
        runtime: RuntimeRecord,
        *,
        wait: bool,
    ) -> bool:
        """Queue a report; with ``wait``, return once it is committed: False if refused.

        ``logs`` and ``runtime`` are serialised when written, so the caller must not
        change them before its next report except to make them newer.
        """
        entry = self._pending.get(task_id)
        if entry is None:
            entry = self._pending[task_id] = _Pending(logs, runtime)
        else:
            entry.logs, entry.runtime = logs, runtime
        if state is not None:
            entry.states.append(state)
        if not wait:
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self.linger, self.flush)
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry.waiters.append(future)
        if not self._unavailable:  # else the retry timer writes it with the rest
            self.flush()
        return await future  # already done (unless the database is away): no turn of the loop

    def flush(self) -> None:
        """Write everything queued, in one transaction (also called at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, {}
        if not batch:
            return
        changes = [Change(tid, tuple(e.states), e.logs, e.runtime) for tid, e in batch.items()]
        try:
            results = self.store.apply(changes)
        except DatabaseFailure as exc:
            self._wait_for_database(batch, exc)
            return
        except Exception as exc:
            log.exception("writing %d task reports failed", len(changes))
            for entry in batch.values():
                for future in entry.waiters:
                    if not future.done():
                        future.set_exception(exc)
            return
        if self._unavailable:
            self._unavailable = False
            log.warning("the database answers again: %d task reports written", len(changes))
        for (task_id, entry), ok in zip(batch.items(), results, strict=True):
            self._settle(task_id, entry, ok)

    def _wait_for_database(self, batch: dict[str, _Pending], exc: DatabaseFailure) -> None:
        """Keep the reports of a write the database refused, and try again soon.

        Nothing ran between taking ``batch`` and now (``apply`` does not yield), so no
        newer report of these tasks is queued: the batch is the whole queue again.
        """
        if not self._unavailable:
            log.warning("the database is unavailable (%s); task reports wait for it", exc.orig)
        self._unavailable = True
        self._pending = batch
        self._timer = asyncio.get_running_loop().call_later(RETRY_SECONDS, self.flush)

    def _settle(self, task_id: str, entry: _Pending, ok: bool) -> None:
        """Answer one task's waiting reports; remember a refusal nobody waited for."""
        if not ok and not entry.waiters:
            self._refused.add(task_id)  # told to the task's next waited report
        elif entry.waiters and task_id in self._refused:
            self._refused.discard(task_id)
            ok = False
        if entry.states and is_final(entry.states[-1]):
            self._refused.discard(task_id)
        for future in entry.waiters:
            if not future.done():
                future.set_result(ok)
