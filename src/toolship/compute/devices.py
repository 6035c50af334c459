"""Which GPUs each running task holds — pure, no I/O.

The scheduler takes and gives capacity per request (:class:`~toolship.compute.base.Capacity`);
with a device inventory, taking a request's GPUs picks *which* devices, by the
task's id, and giving them back frees exactly those.  A device runs at most
``share`` tasks at once (1 unless the operator allows sharing); a task's devices
are always distinct.  The least-loaded devices go first, the lowest index among
equals, so one-GPU tasks spread over the devices.
"""

from __future__ import annotations

from collections.abc import Sequence

from toolship.runtime.gpus import Gpu

__all__ = ["GpuPool"]


class GpuPool:
    def __init__(self, gpus: Sequence[Gpu], share: int = 1) -> None:
        self.gpus = tuple(gpus)
        self.share = share
        self._free = [share] * len(self.gpus)  # tasks each device may still take
        self._held: dict[str, tuple[int, ...]] = {}  # task id -> positions in self.gpus
        self._reserved: dict[str, tuple[int, ...]] = {}  # resumed tasks: theirs already

    def copy(self) -> GpuPool:
        """The same free devices, holding nothing: a scheduler's scratch copy."""
        twin = GpuPool(self.gpus, self.share)
        twin._free = list(self._free)
        return twin

    def fits(self, count: int) -> bool:
        return count <= sum(1 for f in self._free if f > 0)

    def reserve(self, task_id: str, indexes: Sequence[int]) -> list[int]:
        """A resumed attempt's devices (host indexes): its next ``take`` gets exactly these.

        Returns the indexes this inventory does not have (the devices changed since).
        """
        positions = {g.index: p for p, g in enumerate(self.gpus)}
        self._reserved[task_id] = tuple(positions[i] for i in indexes if i in positions)
        return [i for i in indexes if i not in positions]

    def take(self, task_id: str, count: int) -> tuple[Gpu, ...]:
        """Hand ``count`` devices to the task (it must fit, or be reserved)."""
        chosen = self._reserved.pop(task_id, None)
        if chosen is None:
            ranked = sorted(
                (p for p, f in enumerate(self._free) if f > 0), key=lambda p: -self._free[p]
            )
            chosen = tuple(sorted(ranked[:count]))
        for p in chosen:
            self._free[p] -= 1
        self._held[task_id] = chosen
        return tuple(self.gpus[p] for p in chosen)

    def give(self, task_id: str) -> None:
        for p in self._held.pop(task_id, ()):
            self._free[p] += 1

    def held(self, task_id: str) -> tuple[Gpu, ...]:
        return tuple(self.gpus[p] for p in self._held.get(task_id, ()))
