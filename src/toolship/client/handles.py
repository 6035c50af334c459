"""Handles on what a server holds: a :class:`Task` or a :class:`Batch` is an id and the
:class:`toolship.client.Client` that asks the server again each time."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from toolship.models import BatchInfo, BatchReport, OutputFileLog, TaskView, View
from toolship.states import TaskState

if TYPE_CHECKING:
    from toolship.client.core import Client


class Task:
    """A handle on one task of a server."""

    def __init__(self, client: Client, task_id: str) -> None:
        self.client = client
        self.id = task_id

    def __repr__(self) -> str:
        return f"Task({self.id!r})"

    @property
    def state(self) -> TaskState:
        return self.client.get(self.id).state or TaskState.UNKNOWN

    def info(self, view: View | str = View.FULL) -> TaskView:
        """The TES task in the given view."""
        return self.client.get(self.id, view=view)

    def wait(self, timeout: float | None = None) -> TaskState:
        """Block until the task is final (or ``timeout`` seconds pass); return its state."""
        return self.client.wait(self.id, timeout=timeout)

    def logs(self, stream: str = "stdout", executor: int | None = None) -> str:
        """The full stdout (or stderr) of the latest attempt, as text."""
        data = b"".join(self.client.logs(self.id, stream=stream, executor=executor))
        return data.decode("utf-8", errors="replace")

    def output(self, n: int = 0) -> bytes:
        """Output file ``n`` of the latest attempt, read through the server (see
        :meth:`Client.output`)."""
        return b"".join(self.client.output(self.id, n))

    @property
    def outputs(self) -> list[OutputFileLog]:
        """Output files of the latest attempt: ``url``, ``path``, ``size_bytes``."""
        logs = self.info(View.BASIC).logs
        return list(logs[-1].outputs) if logs else []

    @property
    def exit_codes(self) -> list[int]:
        logs = self.info(View.BASIC).logs
        return [ex.exit_code for ex in logs[-1].logs] if logs else []

    def cancel(self) -> None:
        self.client.cancel(self.id)


class Batch:
    """A handle on a batch (sweep, map or task list) of a server."""

    def __init__(self, client: Client, batch_id: str, task_ids: Sequence[str] = ()) -> None:
        self.client = client
        self.id = batch_id
        self.task_ids = list(task_ids)

    def __repr__(self) -> str:
        return f"Batch({self.id!r})"

    def info(self) -> BatchInfo:
        """Size, aggregated state and member counts by state."""
        return self.client.batch_info(self.id)

    @property
    def state(self) -> TaskState:
        return self.info().state

    def tasks(self, view: View | str = View.BASIC) -> Iterator[TaskView]:
        return self.client.tasks(batch=self.id, view=view)

    def wait(self, timeout: float | None = None) -> BatchInfo:
        """Block until no member is queued or running (or ``timeout``); return the info."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.1
        while True:
            info = self.info()
            if not info.active:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                return info
            time.sleep(pause)
            pause = min(1.0, pause * 1.5)

    def cancel(self) -> int:
        return self.client.cancel_batch(self.id)

    def report(self) -> BatchReport:
        return self.client.batch_report(self.id)
