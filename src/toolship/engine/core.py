"""The engine's decisions as a state machine — pure: events in, instructions out.

Which task waits for which, which batch may start another member, what fits
the free capacity, when a batch runs out of time and whether a failed attempt
is tried again are decided here and nowhere else.  :class:`EngineCore` reads
no clock (time comes in with :class:`Tick`), touches no database, starts no
process and never awaits: the :class:`~toolship.engine.engine.Engine` around
it turns what happens (a task stored, an attempt ended, a cancel asked for)
into events, and applies the instructions that come back (store writes,
starting attempts, timers).  So every scheduling rule is tested by feeding it
events (tests/unit/test_engine_core.py), as dask/distributed tests its worker
state machine.

The core assumes the shell applies its instructions: a task it tells to
``Fail`` or ``Cancel`` has ended, for the core, when the instruction is
issued (its children are failed or released at once, its throttle slot freed).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from toolship.compute.base import Capacity, Request
from toolship.engine.events import (
    Alarm,
    AttemptEnded,
    AttemptExited,
    AttemptResumed,
    BatchAdded,
    Cancel,
    CancelRequested,
    Dispatch,
    Event,
    ExpireBatch,
    Fail,
    Instruction,
    Retry,
    Start,
    StartFailed,
    Stop,
    TaskCreated,
    Tick,
)
from toolship.engine.scheduler import Accounts, Queue, Throttle, pick
from toolship.options import retry_reason
from toolship.states import TaskState, is_final

__all__ = ["EngineCore", "not_run_reason"]

S = TaskState


def not_run_reason(parent: str, state: TaskState) -> str:
    if state is S.CANCELED:
        return f"not run: task {parent}, which this task runs after, was cancelled"
    return f"not run: task {parent}, which this task runs after, ended {state.value}"


# --- the state machine ----------------------------------------------------


class _Status(enum.Enum):
    HELD = "held"  # waiting for parents to complete
    BACKLOG = "backlog"  # waiting for a slot of its batch's throttle
    QUEUED = "queued"  # in the queue, waiting for capacity
    RUNNING = "running"  # an attempt holds its capacity


@dataclass(slots=True)
class _Entry:
    """One live task: what it costs, where it waits, and whether it was asked to stop."""

    request: Request
    status: _Status
    pending: set[str] = field(default_factory=set)  # parents not yet COMPLETE
    stop: bool = False


class EngineCore:
    """Queue, dependencies, throttles, deadlines and retries of one engine.

    A task is live here from ``TaskCreated`` (or ``AttemptResumed``) until it
    ends; each live task has one entry that says where it waits.  ``capacity``
    is what the scheduler may still hand out (the backend's ``free``): a
    ``Start`` takes from it, the end of the attempt gives back.  ``accounts``
    keeps what each user and group runs and has waiting (their quotas) and
    their usage (fair share); the time comes with ``Dispatch``, ``AttemptExited``
    and ``Tick``.
    """

    def __init__(
        self, capacity: Capacity, *, min_cpus: int = 1, accounts: Accounts | None = None
    ) -> None:
        self.free = capacity
        self.min_cpus = min_cpus
        self.accounts = accounts or Accounts()
        self.now = 0.0  # the latest time an event brought
        self.queue = Queue()
        self.throttle = Throttle()
        self._tasks: dict[str, _Entry] = {}
        self._children: dict[str, set[str]] = {}  # parent -> children HELD for it
        self._deadlines: dict[str, tuple[float, str]] = {}  # batch -> (deadline, reason)

    # --- queries -----------------------------------------------------------

    def is_running(self, task_id: str) -> bool:
        entry = self._tasks.get(task_id)
        return entry is not None and entry.status is _Status.RUNNING

    def is_live(self, task_id: str) -> bool:
        return task_id in self._tasks

    def stopping(self, task_id: str) -> bool:
        """Whether the task's running attempt was asked to stop already."""
        entry = self._tasks.get(task_id)
        return entry is not None and entry.stop

    def awaited(self) -> list[str]:
        """Parents that held tasks wait for and that are not live here (another
        replica's, or ended before the wake-up of their end came)."""
        return [p for p in self._children if p not in self._tasks]

    def throttled(self, batch_id: str) -> bool:
        """Whether the batch has a max-parallel throttle."""
        return batch_id in self.throttle.limits

    def status(self, task_id: str) -> str | None:
        """Where a live task waits (held, backlog, queued, running); None when not live."""
        entry = self._tasks.get(task_id)
        return None if entry is None else entry.status.value

    # --- events ------------------------------------------------------------

    def handle(self, event: Event) -> list[Instruction]:
        out: list[Instruction] = []
        match event:
            case BatchAdded():
                self._batch_added(event, out)
            case TaskCreated():
                self._created(event, out)
            case AttemptResumed():
                self._resumed(event, out)
            case Dispatch():
                self._clock(event.now)
                self._dispatch(out)
            case StartFailed():
                self._withdraw(event.task_id)
            case AttemptEnded():
                self._attempt_ended(event, out)
            case AttemptExited():
                self._clock(event.now)
                self._attempt_exited(event, out)
            case CancelRequested():
                self._cancel_requested(event, out)
            case Tick():
                self._clock(event.now)
                self._tick(event.now, out)
        return out

    def _clock(self, now: float | None) -> None:
        if now is not None:
            self.now = max(self.now, now)

    def _batch_added(self, e: BatchAdded, out: list[Instruction]) -> None:
        self.throttle.limit(e.batch_id, e.max_parallel)
        if e.deadline is None or e.batch_id in self._deadlines:
            return
        reason = f"canceled: batch {e.batch_id} ran out of time ({e.timeout})"
        self._deadlines[e.batch_id] = (e.deadline, reason)
        out.append(Alarm(e.deadline))

    def _created(self, e: TaskCreated, out: list[Instruction]) -> None:
        task_id = e.request.task_id
        pending: set[str] = set()
        for parent in e.after:
            state = e.parents.get(parent)
            if state is S.COMPLETE:
                continue
            if state is not None and is_final(state):
                out.append(Fail(task_id, not_run_reason(parent, state)))
                self._ended(task_id, S.SYSTEM_ERROR, out)
                return
            pending.add(parent)
        entry = _Entry(e.request, _Status.HELD, pending)
        self._tasks[task_id] = entry
        self.accounts.tally.waiting(e.request, 1)
        for parent in pending:
            self._children.setdefault(parent, set()).add(task_id)
        if not pending:
            self._admit(entry)

    def _resumed(self, e: AttemptResumed, out: list[Instruction]) -> None:
        r = e.request
        self._tasks[r.task_id] = _Entry(r, _Status.RUNNING, stop=e.cancel_requested)
        self.throttle.occupy(r)  # whatever the limit: it runs already
        self._run(r)
        if e.cancel_requested:
            out.append(Stop(r.task_id))

    def _dispatch(self, out: list[Instruction]) -> None:
        chosen = pick(
            self.queue, self.free, min_cpus=self.min_cpus, accounts=self.accounts, now=self.now
        )
        for r in chosen:
            self.queue.remove(r.task_id)
            self.accounts.tally.waiting(r, -1)
            self._run(r)
            self._tasks[r.task_id].status = _Status.RUNNING
            out.append(Start(r))

    def _attempt_ended(self, e: AttemptEnded, out: list[Instruction]) -> None:
        entry = self._tasks.get(e.task_id)
        if entry is None or entry.stop or not is_final(e.state) or not e.policy.retries:
            return
        why = retry_reason(e.policy, e.attempt_number, e.state, e.attempt)
        if why is not None:
            n = e.attempt_number
            out.append(
                Retry(
                    e.task_id,
                    f"attempt {n} ended {e.state.value} with {why}; retrying "
                    f"(attempt {n + 1} of at most {e.policy.retries + 1})",
                )
            )

    def _attempt_exited(self, e: AttemptExited, out: list[Instruction]) -> None:
        entry = self._tasks.get(e.task_id)
        if is_final(e.state):
            self._ended(e.task_id, e.state, out)
        elif entry is None or entry.status is not _Status.RUNNING:
            return
        elif e.state is not S.QUEUED:
            self._withdraw(e.task_id)  # neither ended nor retried: it waits for a restart
        elif entry.stop:  # cancelled while the attempt was ending
            out.append(Cancel(e.task_id))
            self._ended(e.task_id, S.CANCELED, out)
        else:  # a retry: back in the queue, still holding its batch slot
            self._release(entry.request)
            self.accounts.tally.waiting(entry.request, 1)
            entry.status = _Status.QUEUED
            self.queue.add(entry.request)

    def _cancel_requested(self, e: CancelRequested, out: list[Instruction]) -> None:
        if is_final(e.state):
            return
        entry = self._tasks.get(e.task_id)
        if entry is not None and entry.status is _Status.RUNNING:
            entry.stop = True
            out.append(Stop(e.task_id, e.reason))
        elif e.state is S.QUEUED:
            out.append(Cancel(e.task_id, e.reason))
            self._ended(e.task_id, S.CANCELED, out)
        else:
            out.append(Stop(e.task_id, e.reason))

    def _tick(self, now: float, out: list[Instruction]) -> None:
        due = sorted((at, b) for b, (at, _) in self._deadlines.items() if at <= now)
        for _, batch_id in due:
            _, reason = self._deadlines.pop(batch_id)
            out.append(ExpireBatch(batch_id, reason))
        if self._deadlines:
            out.append(Alarm(min(at for at, _ in self._deadlines.values())))

    # --- moves -------------------------------------------------------------

    def _run(self, r: Request) -> None:
        """An attempt holds its capacity, counted to its owner (quotas, fair share)."""
        self.free.take(r)
        self.accounts.tally.running(r, 1)
        self.accounts.ledger.start(r, self.now)

    def _release(self, r: Request) -> None:
        self.free.give(r)
        self.accounts.tally.running(r, -1)
        self.accounts.ledger.stop(r, self.now)

    def _admit(self, entry: _Entry) -> None:
        """Parents done: into the queue, or the batch's backlog when its slots are full."""
        if self.throttle.admit(entry.request):
            entry.status = _Status.QUEUED
            self.queue.add(entry.request)
        else:
            entry.status = _Status.BACKLOG

    def _withdraw(self, task_id: str) -> _Entry | None:
        """Take a task out of wherever it waits, its capacity and batch slot given back."""
        entry = self._tasks.pop(task_id, None)
        if entry is None:
            return None
        r = entry.request
        if entry.status is _Status.RUNNING:
            self._release(r)
        else:
            self.accounts.tally.waiting(r, -1)
        if entry.status is _Status.QUEUED:
            self.queue.remove(task_id)
        elif entry.status is _Status.HELD:
            for parent in entry.pending:
                children = self._children.get(parent)
                if children is not None:
                    children.discard(task_id)
                    if not children:
                        del self._children[parent]
        for ready in self.throttle.release(r.group, task_id):
            self._tasks[ready.task_id].status = _Status.QUEUED
            self.queue.add(ready)
        return entry

    def _ended(self, task_id: str, state: TaskState, out: list[Instruction]) -> None:
        """A task reached ``state`` (final): its children run, or fail, in turn."""
        ended: deque[tuple[str, TaskState]] = deque([(task_id, state)])
        while ended:
            parent, final = ended.popleft()
            self._withdraw(parent)
            for child in sorted(self._children.pop(parent, ())):
                entry = self._tasks.get(child)
                if entry is None or entry.status is not _Status.HELD:
                    continue
                if final is not S.COMPLETE:
                    out.append(Fail(child, not_run_reason(parent, final)))
                    self._withdraw(child)  # at once: it may wait for another parent too
                    ended.append((child, S.SYSTEM_ERROR))
                    continue
                entry.pending.discard(parent)
                if not entry.pending:
                    self._admit(entry)
