"""Fair share among users, then groups — pure: usage, weights and the clock in, an order out.

Each user (and each group) has a usage: the core-seconds its attempts held,
halved every ``half_life`` (Slurm's decayed usage), plus what its running
attempts have held so far.  Its standing is usage divided by its weight
(default 1): the lower, the further it is below its share (Slurm's Fair Tree
ranks by the same ratio, S/U turned over), so it gets the next start.  Users
are compared first, their groups break ties, and the oldest waiting task
breaks the rest; a user's own tasks keep their order (priority, then age).
Nothing here reads a clock: the time comes in as ``now`` (seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from toolship.compute.base import Request
from toolship.config import AccessSettings
from toolship.errors import ConfigError

__all__ = ["Ledger", "Shares", "Usage", "order", "owner_of"]

Standing = tuple[float, float, float, int]


def owner_of(r: Request) -> str:
    """The name usage and quotas are kept under ("" for a task stored before owners)."""
    return r.owner or ""


class Usage:
    """Core-seconds per name, decayed by half every ``half_life`` seconds, plus running use."""

    def __init__(self, half_life: float) -> None:
        self.half_life = half_life
        self._past: dict[str, tuple[float, float]] = {}  # name -> (core-seconds, as of)
        self._running: dict[str, tuple[float, float]] = {}  # name -> (cores, Σ cores·start)

    def past(self, name: str, now: float) -> float:
        value, at = self._past.get(name, (0.0, now))
        return value * float(0.5 ** (max(0.0, now - at) / self.half_life))

    def at(self, name: str, now: float) -> float:
        """Usage now: ended attempts decayed, running ones by what they have held so far."""
        cores, started = self._running.get(name, (0.0, 0.0))
        return self.past(name, now) + max(0.0, cores * now - started)

    def add(self, name: str, core_seconds: float, now: float) -> None:
        self._past[name] = (self.past(name, now) + core_seconds, now)

    def start(self, name: str, cores: float, now: float) -> None:
        held, started = self._running.get(name, (0.0, 0.0))
        self._running[name] = (held + cores, started + cores * now)

    def stop(self, name: str, cores: float, started: float, now: float) -> None:
        held, total = self._running.pop(name, (0.0, 0.0))
        if held - cores > 1e-9:
            self._running[name] = (held - cores, total - cores * started)
        self.add(name, cores * max(0.0, now - started), now)


class Ledger:
    """Usage of users and groups, fed by the engine core as attempts start and end."""

    def __init__(self, half_life: float) -> None:
        self.users = Usage(half_life)
        self.groups = Usage(half_life)
        self._started: dict[str, float] = {}  # task id -> when its attempt started

    def start(self, r: Request, now: float) -> None:
        self._started[r.task_id] = now
        self.users.start(owner_of(r), r.cpus, now)
        if r.owner_group is not None:
            self.groups.start(r.owner_group, r.cpus, now)

    def stop(self, r: Request, now: float) -> None:
        started = self._started.pop(r.task_id, None)
        if started is None:
            return
        self.users.stop(owner_of(r), r.cpus, started, now)
        if r.owner_group is not None:
            self.groups.stop(r.owner_group, r.cpus, started, now)


@dataclass(frozen=True, slots=True)
class Shares:
    """The operator's fair-share settings; ``on=False``: first come, first served."""

    on: bool = True
    half_life: float = 7 * 24 * 3600.0
    user_weights: Mapping[str, float] = field(default_factory=dict)
    group_weights: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, access: AccessSettings) -> Shares:
        for where, weights in (("user", access.user_weights), ("group", access.group_weights)):
            for name, weight in weights.items():
                if not weight > 0:
                    raise ConfigError(
                        f"access.{where}_weights.{name} is {weight}: a weight must be above "
                        "0 (1 is an equal share, 2 twice that); remove it or raise it"
                    )
        return cls(
            on=access.fair_share,
            half_life=access.fair_share_half_life_hours * 3600.0,
            user_weights=dict(access.user_weights),
            group_weights=dict(access.group_weights),
        )

    def user_weight(self, name: str) -> float:
        return self.user_weights.get(name, 1.0)

    def group_weight(self, name: str | None) -> float:
        return 1.0 if name is None else self.group_weights.get(name, 1.0)

    def standing(
        self, owner: str, group: str | None, ledger: Ledger, now: float, cpus: float, oldest: int
    ) -> Standing:
        """Lower goes first: usage per weight of the user, of its group, cores it runs, age.

        ``cpus``: the cores the user runs now, so that starts planned together spread
        over users equally below their share; ``oldest``: its oldest waiting task's rank.
        """
        w = self.user_weight(owner)
        group_usage = 0.0 if group is None else ledger.groups.at(group, now)
        return (
            ledger.users.at(owner, now) / w,
            group_usage / self.group_weight(group),
            cpus / w,
            oldest,
        )


def order(
    waiting: Iterable[tuple[str, str | None, int]],
    ledger: Ledger,
    shares: Shares,
    now: float,
    running: Mapping[str, float] | None = None,
) -> list[str]:
    """The order in which owners get the next start.

    ``waiting``: (owner, its group, its oldest waiting task's rank) for each owner
    with tasks queued; ``running``: cores each runs now.  Off: oldest task first.
    """
    cores = running or {}
    rows = list(waiting)
    if not shares.on:
        return [o for o, _, _ in sorted(rows, key=lambda row: row[2])]
    ranked = sorted(
        rows,
        key=lambda row: shares.standing(row[0], row[1], ledger, now, cores.get(row[0], 0), row[2]),
    )
    return [o for o, _, _ in ranked]
