"""Which queued tasks start now — pure, no I/O, no clock.

Each owner's tasks are considered highest priority first, oldest first within
a priority; each starts if it fits in what is free (a smaller task may pass a
larger one that does not fit yet) and within its owner's and group's running
quotas.  Which owner's task goes next is fair share's (:mod:`.fairshare`: the
one furthest below its share), or, with fair share off, the oldest task's of
the highest priority, as if all tasks formed one line.  The scan stops as soon
as not even the smallest possible task could fit, and skips an owner whose
quota leaves no room, so a long queue on a full machine costs nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

from toolship.compute.base import Capacity, Request
from toolship.engine.fairshare import Ledger, Shares, owner_of
from toolship.engine.quotas import Quotas, Tally, Use

__all__ = ["Accounts", "Queue", "Throttle", "pick"]


class _Line:
    """One owner's queued requests by priority, each priority in arrival order."""

    def __init__(self) -> None:
        self.by_priority: dict[int, dict[str, Request]] = {}
        self.order: list[int] = []  # priorities, highest first

    def add(self, r: Request) -> None:
        bucket = self.by_priority.get(r.priority)
        if bucket is None:
            bucket = self.by_priority[r.priority] = {}
            self.order = sorted(self.by_priority, reverse=True)
        bucket[r.task_id] = r

    def remove(self, task_id: str) -> Request | None:
        for priority, bucket in self.by_priority.items():
            r = bucket.pop(task_id, None)
            if r is not None:
                if not bucket:
                    del self.by_priority[priority]
                    self.order = sorted(self.by_priority, reverse=True)
                return r
        return None

    def __iter__(self) -> Iterator[Request]:
        for priority in self.order:
            yield from self.by_priority[priority].values()


class Queue:
    """Queued requests, one line per owner; O(1) add, remove and membership."""

    def __init__(self) -> None:
        self.lines: dict[str, _Line] = {}
        self._owner: dict[str, str] = {}  # task id -> owner
        self._seq: dict[str, int] = {}  # task id -> arrival rank
        self._next = 0

    def __len__(self) -> int:
        return len(self._owner)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._owner

    def add(self, r: Request) -> None:
        owner = owner_of(r)
        line = self.lines.get(owner)
        if line is None:
            line = self.lines[owner] = _Line()
        line.add(r)
        self._owner[r.task_id] = owner
        self._seq[r.task_id] = self._next
        self._next += 1

    def remove(self, task_id: str) -> Request | None:
        owner = self._owner.pop(task_id, None)
        if owner is None:
            return None
        del self._seq[task_id]
        line = self.lines[owner]
        r = line.remove(task_id)
        if not line.by_priority:
            del self.lines[owner]
        return r

    def rank(self, r: Request) -> tuple[int, int]:
        """Its place in one line of all tasks: highest priority, then oldest, first."""
        return -r.priority, self._seq[r.task_id]

    def __iter__(self) -> Iterator[Request]:
        """All owners' requests as one line.  Do not add or remove while iterating."""
        if len(self.lines) == 1:
            yield from next(iter(self.lines.values()))
        else:
            yield from heapq.merge(*self.lines.values(), key=self.rank)


@dataclass(slots=True)
class Accounts:
    """Who runs what (quotas' tally, fair share's ledger) and the operator's rules for it."""

    quotas: Quotas = field(default_factory=Quotas)
    shares: Shares = field(default_factory=Shares)
    tally: Tally = field(default_factory=Tally)
    ledger: Ledger = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.shares.half_life)


def pick(
    queue: Queue,
    free: Capacity,
    *,
    min_cpus: int = 1,
    accounts: Accounts | None = None,
    now: float = 0.0,
) -> list[Request]:
    """The requests to start now, in start order.  ``free`` is not modified."""
    left = free.scratch()
    chosen: list[Request] = []
    quotas = accounts is not None and accounts.quotas.limits_running
    if accounts is None or (not quotas and (len(queue.lines) <= 1 or not accounts.shares.on)):
        for r in queue:
            if left.cpus < min_cpus:
                break
            if left.fits(r):
                left.take(r)
                chosen.append(r)
        return chosen
    return _Picking(queue, left, min_cpus, accounts, now).run(chosen)


class _Picking:
    """One pick among owners: each owner's next task that fits, the best owner's first."""

    def __init__(
        self, queue: Queue, left: Capacity, min_cpus: int, accounts: Accounts, now: float
    ) -> None:
        self.queue, self.left, self.min_cpus, self.now = queue, left, min_cpus, now
        self.a = accounts
        self.users: dict[str, Use] = {}  # what each runs, with this pick's starts
        self.groups: dict[str, Use] = {}

    def run(self, chosen: list[Request]) -> list[Request]:
        heads: dict[str, tuple[Request, Iterator[Request]]] = {}
        for owner, line in self.queue.lines.items():
            it = iter(line)
            r = self._next(owner, it)
            if r is not None:
                heads[owner] = (r, it)
        while heads and self.left.cpus >= self.min_cpus:
            owner = min(heads, key=lambda o: self._standing(o, heads[o][0]))
            r, it = heads[owner]
            if self._fits(r):
                self.left.take(r)
                self._use(owner).add(r)
                if r.owner_group is not None:
                    self._group_use(r.owner_group).add(r)
                chosen.append(r)
                r_next = self._next(owner, it)
            else:  # what another owner started leaves no room for it any more
                r_next = self._next(owner, it)
            if r_next is None:
                del heads[owner]
            else:
                heads[owner] = (r_next, it)
        return chosen

    def _standing(self, owner: str, r: Request) -> tuple[float, ...]:
        rank = self.queue.rank(r)
        shares = self.a.shares
        if not shares.on:
            return rank
        cpus = self._use(owner).cpus
        return shares.standing(owner, r.owner_group, self.a.ledger, self.now, cpus, rank[1])

    def _use(self, owner: str) -> Use:
        use = self.users.get(owner)
        if use is None:
            t = self.a.tally.user(owner)
            use = self.users[owner] = Use(t.cpus, t.memory_gb, t.gpus)
        return use

    def _group_use(self, group: str) -> Use:
        use = self.groups.get(group)
        if use is None:
            t = self.a.tally.group(group)
            use = self.groups[group] = Use(t.cpus, t.memory_gb, t.gpus)
        return use

    def _fits(self, r: Request) -> bool:
        if not self.left.fits(r):
            return False
        group = self._group_use(r.owner_group) if r.owner_group is not None else Use()
        return self.a.quotas.room(r, self._use(owner_of(r)), group)

    def _next(self, owner: str, it: Iterator[Request]) -> Request | None:
        """The owner's next task that fits; None once nothing of its could."""
        for r in it:
            if self.left.cpus < self.min_cpus:
                return None
            if self.a.quotas.headroom(owner, self._use(owner)) < self.min_cpus:
                return None
            if self._fits(r):
                return r
        return None


class Throttle:
    """Per-group (batch) limits on members started at once — pure.

    A limited group never has more than ``limit`` members in the scheduler's
    queue or running together: the rest wait here, in arrival order, and move
    on one by one as members finish.  So a batch of 100 000 members with
    ``max_parallel=2`` puts two requests in the queue, and a scheduler tick
    never scans the other 99 998.
    """

    def __init__(self) -> None:
        self.limits: dict[str, int] = {}
        self._active: dict[str, set[str]] = {}
        self._backlog: dict[str, dict[str, Request]] = {}

    def limit(self, group: str, limit: int | None) -> None:
        if limit is None:
            self.limits.pop(group, None)
        else:
            self.limits[group] = limit

    def admit(self, r: Request) -> bool:
        """True when ``r`` may enter the queue now; otherwise it waits in the backlog."""
        limit = self.limits.get(r.group) if r.group is not None else None
        if r.group is None or limit is None:
            return True
        active = self._active.setdefault(r.group, set())
        if r.task_id in active:
            return True
        if len(active) < limit:
            active.add(r.task_id)
            return True
        self._backlog.setdefault(r.group, {})[r.task_id] = r
        return False

    def occupy(self, r: Request) -> None:
        """``r`` runs already (found again after a restart): it holds a slot, whatever the limit."""
        if r.group is not None:
            self._active.setdefault(r.group, set()).add(r.task_id)

    def holds(self, task_id: str, group: str | None) -> bool:
        """Whether ``task_id`` waits in the backlog."""
        return group is not None and task_id in self._backlog.get(group, {})

    def release(self, group: str | None, task_id: str) -> list[Request]:
        """``task_id`` finished (or left): the members that may enter the queue now."""
        if group is None:
            return []
        backlog = self._backlog.get(group, {})
        if backlog.pop(task_id, None) is not None:
            return []
        active = self._active.get(group)
        if active is None or task_id not in active:
            return []
        active.discard(task_id)
        limit = self.limits.get(group, len(active) + len(backlog))
        ready: list[Request] = []
        while backlog and len(active) < limit:
            first = next(iter(backlog))
            r = backlog.pop(first)
            active.add(r.task_id)
            ready.append(r)
        if not active and not backlog:
            self._active.pop(group, None)
            self._backlog.pop(group, None)
        return ready

    def running(self, group: str) -> int:
        return len(self._active.get(group, ()))
