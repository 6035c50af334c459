"""Which queued tasks start now — pure, no I/O, no clock.

Tasks are considered highest priority first, oldest first within a priority;
each starts if it fits in what is free (a smaller task may pass a larger one
that does not fit yet).  The scan stops as soon as not even the smallest
possible task could fit, so a long queue on a full machine costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from toolship.compute.base import Capacity, Request

__all__ = ["Queue", "Throttle", "pick"]


class Queue:
    """Queued requests by priority, each priority in arrival order; O(1) add and remove."""

    def __init__(self) -> None:
        self._by_priority: dict[int, dict[str, Request]] = {}
        self._order: list[int] = []  # priorities, highest first

    def __len__(self) -> int:
        return sum(len(b) for b in self._by_priority.values())

    def __contains__(self, task_id: object) -> bool:
        return any(task_id in b for b in self._by_priority.values())

    def add(self, r: Request) -> None:
        bucket = self._by_priority.get(r.priority)
        if bucket is None:
            bucket = self._by_priority[r.priority] = {}
            self._order = sorted(self._by_priority, reverse=True)
        bucket[r.task_id] = r

    def remove(self, task_id: str) -> Request | None:
        for priority, bucket in self._by_priority.items():
            r = bucket.pop(task_id, None)
            if r is not None:
                if not bucket:
                    del self._by_priority[priority]
                    self._order = sorted(self._by_priority, reverse=True)
                return r
        return None

    def __iter__(self) -> Iterator[Request]:
        """In start order.  Do not add or remove while iterating."""
        for priority in self._order:
            yield from self._by_priority[priority].values()


def pick(queue: Iterable[Request], free: Capacity, *, min_cpus: int = 1) -> list[Request]:
    """The requests to start now, in start order.  ``free`` is not modified."""
    left = free.scratch()
    chosen: list[Request] = []
    for r in queue:
        if left.cpus < min_cpus:
            break
        if left.fits(r):
            left.take(r)
            chosen.append(r)
    return chosen


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
