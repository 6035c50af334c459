"""Which queued tasks start now — pure, no I/O, no clock.

Tasks are considered highest priority first, oldest first within a priority;
each starts if it fits in what is free (a smaller task may pass a larger one
that does not fit yet).  The scan stops as soon as not even the smallest
possible task could fit, so a long queue on a full machine costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["Capacity", "Queue", "Request", "pick"]


@dataclass(frozen=True, slots=True)
class Request:
    task_id: str
    cpus: int
    memory_gb: float
    gpus: int = 0
    priority: int = 0


@dataclass(slots=True)
class Capacity:
    cpus: float
    memory_gb: float
    gpus: int = 0

    def fits(self, r: Request) -> bool:
        return r.cpus <= self.cpus and r.memory_gb <= self.memory_gb + 1e-9 and r.gpus <= self.gpus

    def take(self, r: Request) -> None:
        self.cpus -= r.cpus
        self.memory_gb -= r.memory_gb
        self.gpus -= r.gpus

    def give(self, r: Request) -> None:
        self.cpus += r.cpus
        self.memory_gb += r.memory_gb
        self.gpus += r.gpus


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
    left = Capacity(free.cpus, free.memory_gb, free.gpus)
    chosen: list[Request] = []
    for r in queue:
        if left.cpus < min_cpus:
            break
        if left.fits(r):
            left.take(r)
            chosen.append(r)
    return chosen
