"""How an attempt run in this process persists its progress, and asks for a retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from toolship.engine.events import AttemptEnded, Retry
from toolship.engine.tally import Tally
from toolship.engine.writer import ReportWriter
from toolship.models import TaskLog
from toolship.records import Job, RuntimeRecord
from toolship.states import TaskState, is_final
from toolship.supply.images import image_uses

if TYPE_CHECKING:
    from toolship.engine.core import EngineCore

__all__ = ["AttemptReporter"]


class AttemptReporter:
    """Persists a worker's reports for one attempt (the local, in-process reporter).

    A failed attempt that its retry policy covers is not final: the engine core
    says so, the task goes back to QUEUED with the attempt kept in ``logs[]``,
    and starts again.  Once a final state is committed, ``settled`` wakes those
    waiting for the task at once, before the attempt's own wind-down.  ``tally`` counts
    each attempt's staged bytes as it ends, and the task's final state.
    """

    def __init__(
        self,
        core: EngineCore,
        writer: ReportWriter,
        job: Job,
        earlier: list[TaskLog],
        settled: Callable[[str], None] = lambda task_id: None,
        *,
        tally: Tally,
    ) -> None:
        self.core = core
        self.writer = writer
        self.job = job
        self.earlier = earlier
        self.settled = settled
        self.tally = tally
        self.ended: TaskState | None = None  # the final state once committed
        self.ran_images = False  # once ended: whether any attempt recorded an image it ran

    async def update(
        self,
        state: TaskState | None,
        attempt: TaskLog,
        runtime: RuntimeRecord,
        *,
        wait: bool = True,
    ) -> bool:
        job = self.job
        logs = [*self.earlier, attempt]
        if state is not None and is_final(state):
            ended = AttemptEnded(job.task_id, state, job.attempt_number, job.options.retry, attempt)
            for retry in self.core.handle(ended):
                assert isinstance(retry, Retry)
                attempt.system_logs = [*(attempt.system_logs or []), retry.why]
                queued = TaskState.QUEUED
                if await self.writer.write(job.task_id, queued, logs, RuntimeRecord(), wait=True):
                    self.tally.attempt_ended(attempt, runtime)
                    return True
        written = await self.writer.write(job.task_id, state, logs, runtime, wait=wait)
        if written and wait and state is not None and is_final(state):
            self.ended = state
            self.ran_images = any(image_uses(log.metadata) for log in logs)
            self.tally.attempt_ended(attempt, runtime)
            self.tally.task_ended(state)
            self.settled(job.task_id)
        return written
