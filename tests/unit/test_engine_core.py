"""The engine core, driven by events alone: scenarios, then invariants over random histories."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from toolship.compute.base import Capacity, Request
from toolship.config import Quota
from toolship.engine.core import EngineCore
from toolship.engine.events import (
    Alarm,
    AttemptEnded,
    AttemptExited,
    AttemptResumed,
    BatchAdded,
    Cancel,
    CancelRequested,
    Dispatch,
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
from toolship.engine.quotas import Quotas
from toolship.engine.scheduler import Accounts
from toolship.models import ExecutorLog, TaskLog
from toolship.options import RetryPolicy, parse_retry
from toolship.states import TaskState, is_final

S = TaskState
NO_RETRY = RetryPolicy()


def req(
    task_id: str,
    cpus: int = 1,
    memory_gb: float = 1,
    *,
    gpus: int = 0,
    priority: int = 0,
    group: str | None = None,
) -> Request:
    return Request(task_id, cpus, memory_gb, gpus=gpus, priority=priority, group=group)


def started(out: Sequence[Instruction]) -> list[str]:
    return [i.task_id for i in out if isinstance(i, Start)]


def core_with(cpus: int = 4, memory_gb: float = 16, gpus: int = 0) -> EngineCore:
    return EngineCore(Capacity(cpus, memory_gb, gpus))


def create(core: EngineCore, *requests: Request, after: tuple[str, ...] = ()) -> None:
    for r in requests:
        assert core.handle(TaskCreated(r, after)) == []


def log(code: int | None = None) -> TaskLog:
    return TaskLog(logs=[] if code is None else [ExecutorLog(exit_code=code)])


# --- scenarios --------------------------------------------------------------


def test_a_task_without_parents_starts_when_it_fits() -> None:
    core = core_with(cpus=2)
    create(core, req("a", cpus=2), req("b", cpus=2))
    assert started(core.handle(Dispatch())) == ["a"]
    assert core.free.cpus == 0
    assert started(core.handle(Dispatch())) == []
    assert core.handle(AttemptExited("a", S.COMPLETE)) == []
    assert core.free.cpus == 2
    assert started(core.handle(Dispatch())) == ["b"]


def test_a_child_waits_until_every_parent_is_complete() -> None:
    core = core_with()
    create(core, req("a"), req("b"))
    create(core, req("c"), after=("a", "b"))
    assert started(core.handle(Dispatch())) == ["a", "b"]
    assert core.status("c") == "held"
    core.handle(AttemptExited("a", S.COMPLETE))
    assert started(core.handle(Dispatch())) == []
    core.handle(AttemptExited("b", S.COMPLETE))
    assert started(core.handle(Dispatch())) == ["c"]


def test_a_failed_parent_fails_its_children_and_theirs() -> None:
    core = core_with()
    create(core, req("a"))
    create(core, req("b"), after=("a",))
    create(core, req("c"), after=("b",))
    core.handle(Dispatch())
    assert core.handle(AttemptExited("a", S.EXECUTOR_ERROR)) == [
        Fail("b", "not run: task a, which this task runs after, ended EXECUTOR_ERROR"),
        Fail("c", "not run: task b, which this task runs after, ended SYSTEM_ERROR"),
    ]
    assert not core.is_live("b") and not core.is_live("c")


def test_parents_already_ended_when_the_task_is_created() -> None:
    core = core_with()
    done = TaskCreated(req("x"), ("p",), {"p": S.COMPLETE})
    assert core.handle(done) == []
    assert core.status("x") == "queued"
    gone = TaskCreated(req("y"), ("p", "q"), {"p": S.COMPLETE, "q": S.CANCELED})
    assert core.handle(gone) == [
        Fail("y", "not run: task q, which this task runs after, was cancelled")
    ]
    assert not core.is_live("y")


def test_a_member_placed_before_its_failed_parent_fails_with_it() -> None:
    """In a batch, @0 may run after @1: placed first, it waits; @1 fails at once, so does @0."""
    core = core_with()
    create(core, req("m0"), after=("m1",))
    out = core.handle(TaskCreated(req("m1"), ("x",), {"x": S.SYSTEM_ERROR}))
    assert [type(i) for i in out] == [Fail, Fail]
    assert [i.task_id for i in out if isinstance(i, Fail)] == ["m1", "m0"]


def test_a_batch_never_runs_more_than_its_max_parallel() -> None:
    core = core_with(cpus=10)
    core.handle(BatchAdded("b", max_parallel=2))
    create(core, *(req(f"m{i}", group="b") for i in range(5)))
    assert len(core.queue) == 2  # the rest wait in the batch's backlog, not in the queue
    assert started(core.handle(Dispatch())) == ["m0", "m1"]
    core.handle(AttemptExited("m0", S.COMPLETE))
    assert started(core.handle(Dispatch())) == ["m2"]
    assert core.throttle.running("b") == 2


def test_higher_priority_first_then_oldest_first() -> None:
    core = core_with(cpus=1)
    create(core, req("old"), req("young"), req("urgent", priority=5))
    order = []
    for _ in range(3):
        (task_id,) = started(core.handle(Dispatch()))
        order.append(task_id)
        core.handle(AttemptExited(task_id, S.COMPLETE))
    assert order == ["urgent", "old", "young"]


def test_a_smaller_task_passes_one_that_does_not_fit_yet() -> None:
    core = core_with(cpus=3, memory_gb=4, gpus=1)
    create(core, req("a", cpus=2), req("wide", cpus=2), req("gpu", gpus=1, memory_gb=4))
    create(core, req("narrow"))
    assert started(core.handle(Dispatch())) == ["a", "narrow"]
    assert (core.free.cpus, core.free.memory_gb) == (0, 2)


def test_cancelling_a_queued_member_frees_its_slot_for_the_next() -> None:
    core = core_with(cpus=10)
    core.handle(BatchAdded("b", max_parallel=1))
    create(core, *(req(f"m{i}", group="b") for i in range(3)))
    assert core.handle(CancelRequested("m0", S.QUEUED, "no")) == [Cancel("m0", "no")]
    assert core.handle(CancelRequested("m2", S.QUEUED)) == [Cancel("m2")]  # from the backlog
    assert started(core.handle(Dispatch())) == ["m1"]
    core.handle(AttemptExited("m1", S.COMPLETE))
    assert core.handle(Dispatch()) == [] and len(core.queue) == 0


def test_cancelling_a_held_task_fails_its_children_and_nothing_else() -> None:
    core = core_with()
    create(core, req("a"))
    create(core, req("b"), after=("a",))
    create(core, req("c"), after=("b",))
    core.handle(Dispatch())
    assert core.handle(CancelRequested("b", S.QUEUED)) == [
        Cancel("b"),
        Fail("c", "not run: task b, which this task runs after, was cancelled"),
    ]
    assert core.handle(AttemptExited("a", S.COMPLETE)) == []
    assert core.handle(Dispatch()) == []


def test_a_running_task_is_asked_to_stop_and_never_retried() -> None:
    core = core_with()
    create(core, req("a"))
    core.handle(Dispatch())
    assert core.handle(CancelRequested("a", S.RUNNING, "why")) == [Stop("a", "why")]
    policy = parse_retry("3", None)
    assert core.handle(AttemptEnded("a", S.SYSTEM_ERROR, 1, policy, log())) == []
    assert core.handle(AttemptExited("a", S.CANCELED)) == []
    assert core.free.cpus == 4 and not core.is_live("a")


def test_a_cancel_while_the_retry_is_written_ends_canceled() -> None:
    core = core_with()
    create(core, req("a"))
    create(core, req("child"), after=("a",))
    core.handle(Dispatch())
    out = core.handle(AttemptEnded("a", S.SYSTEM_ERROR, 1, parse_retry("1", None), log()))
    assert [type(i) for i in out] == [Retry]
    assert core.handle(CancelRequested("a", S.QUEUED)) == [Stop("a")]
    assert core.handle(AttemptExited("a", S.QUEUED)) == [
        Cancel("a"),
        Fail("child", "not run: task a, which this task runs after, was cancelled"),
    ]


def test_a_retried_attempt_goes_back_to_the_queue_keeping_its_batch_slot() -> None:
    core = core_with()
    core.handle(BatchAdded("b", max_parallel=1))
    create(core, req("m0", group="b"), req("m1", group="b"))
    policy = parse_retry("2", "exit:75")
    for n in (1, 2):
        assert started(core.handle(Dispatch())) == ["m0"]
        assert core.handle(AttemptEnded("m0", S.EXECUTOR_ERROR, n, policy, log(75))) == [
            Retry(
                "m0",
                f"attempt {n} ended EXECUTOR_ERROR with exit code 75; retrying "
                f"(attempt {n + 1} of at most 3)",
            )
        ]
        core.handle(AttemptExited("m0", S.QUEUED))
    assert started(core.handle(Dispatch())) == ["m0"]
    assert core.handle(AttemptEnded("m0", S.EXECUTOR_ERROR, 3, policy, log(75))) == []
    core.handle(AttemptExited("m0", S.EXECUTOR_ERROR))
    assert started(core.handle(Dispatch())) == ["m1"]


def test_exit_codes_the_policy_does_not_name_are_final() -> None:
    core = core_with()
    create(core, req("a"))
    core.handle(Dispatch())
    policy = parse_retry("2", "exit:75")
    assert core.handle(AttemptEnded("a", S.EXECUTOR_ERROR, 1, policy, log(1))) == []
    assert core.handle(AttemptEnded("a", S.COMPLETE, 1, policy, log(0))) == []


def test_batch_deadlines_come_due_with_the_ticks() -> None:
    core = core_with()
    assert core.handle(BatchAdded("late", deadline=100, timeout="1m")) == [Alarm(100)]
    assert core.handle(BatchAdded("soon", deadline=50)) == [Alarm(50)]
    assert core.handle(BatchAdded("soon", deadline=50)) == []  # known already
    assert core.handle(Tick(49.9)) == [Alarm(50)]  # an early timer is armed again
    assert core.handle(Tick(60)) == [
        ExpireBatch("soon", "canceled: batch soon ran out of time (its timeout)"),
        Alarm(100),
    ]
    assert core.handle(Tick(100)) == [
        ExpireBatch("late", "canceled: batch late ran out of time (1m)")
    ]
    assert core.handle(Tick(1000)) == []


def test_a_resumed_attempt_holds_its_capacity_and_slot_and_is_stopped_if_asked() -> None:
    core = core_with(cpus=2)
    core.handle(BatchAdded("b", max_parallel=1))
    assert core.handle(AttemptResumed(req("r", cpus=2, group="b"), cancel_requested=True)) == [
        Stop("r")
    ]
    create(core, req("m", group="b"))
    assert core.status("m") == "backlog"
    assert core.free.cpus == 0
    core.handle(AttemptExited("r", S.CANCELED))
    assert started(core.handle(Dispatch())) == ["m"]


def test_a_start_that_failed_gives_everything_back() -> None:
    core = core_with(cpus=1)
    core.handle(BatchAdded("b", max_parallel=1))
    create(core, req("a", group="b"), req("b", group="b"))
    assert started(core.handle(Dispatch())) == ["a"]
    assert core.handle(StartFailed("a")) == []
    assert core.free.cpus == 1 and not core.is_live("a")
    assert started(core.handle(Dispatch())) == ["b"]


def test_a_start_found_not_queued_any_more_ends_there() -> None:
    core = core_with()
    create(core, req("a"))
    create(core, req("b"), after=("a",))
    core.handle(Dispatch())
    assert core.handle(AttemptExited("a", S.CANCELED)) == [
        Fail("b", "not run: task a, which this task runs after, was cancelled")
    ]
    assert core.free.cpus == 4


# --- invariants over random histories ------------------------------------------

TOTAL = Capacity(4, 8, 1)
OWNERS = ("alice", "bob", None)
BOB_CPUS = 2  # bob's running-cores quota (his tasks ask for at most that many)


def new_core() -> EngineCore:
    quotas = Quotas(users={"bob": Quota(running_cpus=BOB_CPUS)})
    capacity = Capacity(TOTAL.cpus, TOTAL.memory_gb, TOTAL.gpus)
    return EngineCore(capacity, accounts=Accounts(quotas=quotas))


# Drawn by small numbers first (hypothesis favours them): the interesting cases lead.
OUTCOMES = [S.SYSTEM_ERROR, S.COMPLETE, S.EXECUTOR_ERROR, S.COMPLETE]
POLICIES = [parse_retry("1", None), parse_retry("2", "exit:75"), NO_RETRY]


@dataclass
class World:
    """The shell and the store, as the core sees them: applies instructions, checks each."""

    core: EngineCore = field(default_factory=new_core)
    store: dict[str, S] = field(default_factory=dict)
    after: dict[str, tuple[str, ...]] = field(default_factory=dict)
    request: dict[str, Request] = field(default_factory=dict)
    policy: dict[str, RetryPolicy] = field(default_factory=dict)
    limits: dict[str, int | None] = field(default_factory=dict)
    deadlines: dict[str, float] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=dict)
    running: dict[str, bool] = field(default_factory=dict)  # task -> its end was reported
    stop_asked: set[str] = field(default_factory=set)  # the store's cancel_requested
    stopping: set[str] = field(default_factory=set)  # attempts that were told to stop
    placed: set[str] = field(default_factory=set)
    finals: dict[str, list[S]] = field(default_factory=dict)
    now: float = 0.0
    alarm: float | None = None

    def apply(self, out: Sequence[Instruction]) -> None:
        for ins in out:
            if isinstance(ins, Start):
                self.start(ins.task_id)
            elif isinstance(ins, Fail):
                self.end(ins.task_id, S.SYSTEM_ERROR)
            elif isinstance(ins, Cancel):
                self.end(ins.task_id, S.CANCELED)
            elif isinstance(ins, Stop):
                self.stop_asked.add(ins.task_id)
                if ins.task_id in self.running:
                    self.stopping.add(ins.task_id)
            elif isinstance(ins, ExpireBatch):
                self.expired.add(ins.batch_id)
                for m in self.members[ins.batch_id]:
                    self.cancel(m, ins.reason)
            elif isinstance(ins, Alarm):
                self.alarm = ins.at if self.alarm is None else min(self.alarm, ins.at)
            else:
                raise AssertionError(f"{ins} outside an attempt's end")
            free = self.core.free
            assert min(free.cpus, free.memory_gb + 1e-9, free.gpus) >= 0, free

    def start(self, task_id: str) -> None:
        assert self.store[task_id] is S.QUEUED, "only a queued task starts"
        assert task_id not in self.running, "nothing starts twice"
        assert task_id not in self.stop_asked, "a task asked to stop never starts again"
        parents = {p: self.store[p] for p in self.after[task_id]}
        assert all(s is S.COMPLETE for s in parents.values()), parents
        self.store[task_id] = S.RUNNING
        self.running[task_id] = False
        self.attempts[task_id] = self.attempts.get(task_id, 0) + 1
        assert self.attempts[task_id] <= 1 + self.policy[task_id].retries
        group = self.request[task_id].group
        batch = task_id.split(".")[0]
        if batch in self.deadlines:
            assert self.now < self.deadlines[batch], f"{task_id} started after its deadline"
        bob = sum(r.cpus for t in self.running if (r := self.request[t]).owner == "bob")
        assert bob <= BOB_CPUS, f"bob runs {bob} cores, his quota is {BOB_CPUS}"
        limit = self.limits.get(group) if group else None
        if limit is not None:
            together = sum(1 for t in self.running if self.request[t].group == group)
            assert together <= limit, f"{together} members of {group} run, max {limit}"

    def end(self, task_id: str, state: S) -> None:
        assert not is_final(self.store[task_id]), f"{task_id} ended twice"
        self.store[task_id] = state
        self.finals.setdefault(task_id, []).append(state)

    def cancel(self, task_id: str, reason: str | None = None) -> None:
        if not is_final(self.store[task_id]):
            self.apply(self.core.handle(CancelRequested(task_id, self.store[task_id], reason)))

    def place(self, task_id: str) -> None:
        """What the shell passes: the stored state of each parent that has been placed."""
        known = {p: self.store[p] for p in self.after[task_id] if p in self.placed}
        self.placed.add(task_id)
        self.apply(self.core.handle(TaskCreated(self.request[task_id], self.after[task_id], known)))

    def report(self, task_id: str, outcome: S, code: int) -> None:
        """The attempt's final report: retried, or its end stored."""
        told = task_id in self.stopping
        assert told == (task_id in self.stop_asked), "a cancel did not reach the attempt"
        state = S.CANCELED if told else outcome
        event = AttemptEnded(
            task_id, state, self.attempts[task_id], self.policy[task_id], log(code)
        )
        out = self.core.handle(event)
        assert all(isinstance(i, Retry) for i in out)
        if out:
            self.store[task_id] = S.QUEUED
        else:
            self.end(task_id, state)
        self.running[task_id] = True

    def exit(self, task_id: str) -> None:
        del self.running[task_id]
        self.stopping.discard(task_id)
        self.apply(self.core.handle(AttemptExited(task_id, self.store[task_id])))

    def tick(self, seconds: float) -> None:
        self.now += seconds
        if self.alarm is not None and self.now >= self.alarm:
            self.alarm = None
            self.apply(self.core.handle(Tick(self.now)))

    def restart(self) -> None:
        """A new core, rebuilt from the store the way Engine.recover does it."""
        self.core = new_core()
        self.alarm = None
        self.stopping.clear()  # the attempts are new objects: told again, or not at all
        for b, members in self.members.items():
            if any(not is_final(self.store[m]) for m in members):
                event = BatchAdded(b, self.limits[b], self.deadlines.get(b))
                self.apply(self.core.handle(event))
        for t, reported in list(self.running.items()):
            if reported:  # its end was stored; the attempt's coroutine is gone
                del self.running[t]
            else:
                resumed = AttemptResumed(self.request[t], t in self.stop_asked)
                self.apply(self.core.handle(resumed))
        for t in sorted(self.placed):
            if self.store[t] is S.QUEUED and t not in self.running:
                known = {p: self.store[p] for p in self.after[t]}
                self.apply(self.core.handle(TaskCreated(self.request[t], self.after[t], known)))
                if t in self.stop_asked:  # asked while its retry was being written
                    self.cancel(t)

    def add(self, task_id: str, after: tuple[str, ...], seed: int, group: str | None) -> None:
        self.store[task_id] = S.QUEUED
        self.after[task_id] = after
        self.policy[task_id] = POLICIES[seed % len(POLICIES)]
        owner = OWNERS[(seed // 5) % len(OWNERS)]
        cpus = 1 + seed % 4
        self.request[task_id] = Request(
            task_id,
            cpus=min(cpus, BOB_CPUS) if owner == "bob" else cpus,
            memory_gb=(seed // 4) % 9,
            gpus=(seed // 36) % 2,
            priority=(seed // 72) % 3,
            group=group,
            owner=owner,
            owner_group=None if owner is None else f"{owner}-lab",
        )


Op = tuple[int, int, int, int]
# (what happens, then three numbers that pick who and how)
OPS = st.lists(
    st.tuples(st.integers(0, 9), *(st.integers(0, 999) for _ in range(3))), min_size=10, max_size=60
)


def play(ops: Sequence[Op]) -> World:
    w = World()
    ids: list[str] = []
    for k, a, b, c in ops:
        if k in (0, 1):  # a task, after up to two earlier ones
            t = f"t{len(ids)}"
            parents = tuple(sorted({ids[x % len(ids)] for x in (a, b) if ids and x % 3}))
            w.add(t, parents, c, None)
            ids.append(t)
            w.place(t)
        elif k == 2:  # a batch: members may run after each other, in any placement order
            ids += add_batch(w, ids, a, b, c)
        elif k in (3, 4):
            w.apply(w.core.handle(Dispatch()))
        elif k in (5, 6) and w.running:
            settle_one(w, a)
        elif k == 7 and ids:  # often one that runs, or whose retry is being written
            ending = sorted(t for t, reported in w.running.items() if reported)
            names = [ids, sorted(w.running), ending][b % 3] or ids
            w.cancel(names[a % len(names)], "asked")
        elif k == 8:
            w.tick(a % 40)
        elif k == 9:
            w.restart()
    drain(w)
    return w


def add_batch(w: World, ids: list[str], a: int, b: int, c: int) -> list[str]:
    """A batch whose members may run after each other and after earlier tasks."""
    batch = f"b{len(w.members)}"
    size = 1 + a % 6
    names = [f"{batch}.{i}" for i in range(size)]
    rank = sorted(range(size), key=lambda i: (i * (b + 1)) % 7)  # a topological order
    w.limits[batch] = (None, 1, 2)[c % 3]
    if c % 2:
        w.deadlines[batch] = w.now + 1 + c % 50
    w.members[batch] = names
    for pos, i in enumerate(rank):
        earlier = [names[j] for j in rank[:pos] if (i + j + b) % 3 == 0]
        outside = [ids[a % len(ids)]] if ids and c % 5 == 0 else []
        group = batch if w.limits[batch] else None
        w.add(names[i], tuple(sorted({*earlier, *outside})), a + b + i, group)
    deadline = w.deadlines.get(batch)
    w.apply(w.core.handle(BatchAdded(batch, w.limits[batch], deadline)))
    for i, name in enumerate(names):
        w.place(name)
        if (i + b) % 4 == 0:  # the loop turns between chunks: attempts may end
            w.apply(w.core.handle(Dispatch()))
            settle_one(w, a + i)
    return names


def settle_one(w: World, seed: int) -> None:
    """One attempt reports its end (with an outcome drawn from ``seed``), or exits after it."""
    if not w.running:
        return
    names = sorted(w.running)
    t = names[seed % len(names)]
    if w.running[t]:
        w.exit(t)
    else:
        w.report(t, OUTCOMES[seed % len(OUTCOMES)], (75, 0, 1)[seed % 3])


def drain(w: World) -> None:
    """Run everything to its end: every attempt completes, time passes every deadline."""
    for _ in range(10_000):
        w.apply(w.core.handle(Dispatch()))
        if not w.running:
            break
        for t in sorted(w.running):
            if w.running[t]:
                w.exit(t)
            else:
                w.report(t, S.COMPLETE, 0)
    w.tick(max([*w.deadlines.values(), w.now]) + 1 - w.now)


# Derandomized: the same histories on every run, so CI cannot flake; ~2 s.
SETTINGS = settings(max_examples=250, deadline=None, derandomize=True, database=None)


@SETTINGS
@given(OPS)
def test_random_histories_keep_every_invariant(ops: list[Op]) -> None:
    """Checked at each step (World.apply/start/end): only a QUEUED task starts, after every
    parent is COMPLETE, never twice at once nor more often than its retries allow; a batch
    never runs more than its max-parallel and starts nothing past its deadline; bob never
    runs beyond his quota; capacity never goes negative; no task ends twice.  Checked at
    the end, below."""
    w = play(ops)
    assert w.running == {}
    assert {t: s for t, s in w.store.items() if not is_final(s)} == {}, "a task never ended"
    assert set(w.finals) == set(w.store)
    assert all(len(ends) == 1 for ends in w.finals.values()), w.finals
    free = w.core.free
    assert (free.cpus, round(free.memory_gb, 6), free.gpus) == (4, 8, 1), "capacity leaked"
    assert len(w.core.queue) == 0
    tally = w.core.accounts.tally
    for use in (*tally.users.values(), *tally.groups.values()):
        assert (use.cpus, round(use.memory_gb, 6), use.gpus, use.queued) == (0, 0, 0, 0), use
    assert not any(w.core.is_live(t) for t in w.store)
    assert w.expired <= set(w.deadlines)
    for t, after in w.after.items():
        if any(w.store[p] is not S.COMPLETE for p in after):
            assert t not in w.attempts, f"{t} ran though a parent did not complete"
            assert w.store[t] in (S.SYSTEM_ERROR, S.CANCELED)
