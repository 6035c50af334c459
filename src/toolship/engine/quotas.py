"""Quotas per user and per group — pure: what each runs and has waiting, against its limits.

Running limits (cores, memory, GPUs at once) make tasks wait in the scheduler;
the queued-task limit refuses a creation with a 429 and the batch-size limit a
batch with a 400, each naming the limit, the setting that gives it, its value
and the current use.  A user's limits are ``access.user_quotas.NAME``, else
``access.default_quota``; a group's are ``access.group_quotas.NAME`` (none for
a group not named).  Tasks stored before owners existed have no quota.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from toolship.compute.base import Request
from toolship.config import AccessSettings, Quota
from toolship.errors import InvalidRequest, TooManyRequests

__all__ = ["Quotas", "Tally", "Use", "check_account"]

_NONE = Quota()


@dataclass(slots=True)
class Use:
    """What one user or group runs now (cores, memory, GPUs) and how many tasks wait."""

    cpus: float = 0
    memory_gb: float = 0.0
    gpus: int = 0
    queued: int = 0

    def add(self, r: Request, sign: int = 1) -> None:
        self.cpus += sign * r.cpus
        self.memory_gb += sign * r.memory_gb
        self.gpus += sign * r.gpus

    def __add__(self, other: Use) -> Use:
        return Use(
            self.cpus + other.cpus,
            self.memory_gb + other.memory_gb,
            self.gpus + other.gpus,
            self.queued + other.queued,
        )


class Tally:
    """Running use and waiting tasks per user and per group, kept by the engine core.

    With several replicas, ``elsewhere`` holds what the other replicas' tasks hold (read
    from the database at each heartbeat): a user's quota is his across the service.
    """

    def __init__(self) -> None:
        self.users: dict[str, Use] = {}
        self.groups: dict[str, Use] = {}
        self.elsewhere_users: Mapping[str, Use] = {}
        self.elsewhere_groups: Mapping[str, Use] = {}

    def user(self, name: str) -> Use:
        own = self.users.get(name) or Use()
        other = self.elsewhere_users.get(name)
        return own if other is None else own + other

    def group(self, name: str | None) -> Use:
        if name is None:
            return Use()
        own = self.groups.get(name) or Use()
        other = self.elsewhere_groups.get(name)
        return own if other is None else own + other

    def held_elsewhere(self, users: Mapping[str, Use], groups: Mapping[str, Use]) -> bool:
        """Take the other replicas' use; whether some of it went (room to start more)."""
        freed = _less(users, self.elsewhere_users) or _less(groups, self.elsewhere_groups)
        self.elsewhere_users, self.elsewhere_groups = users, groups
        return freed

    def _uses(self, r: Request) -> list[Use]:
        uses = [self.users.setdefault(r.owner or "", Use())]
        if r.owner_group is not None:
            uses.append(self.groups.setdefault(r.owner_group, Use()))
        return uses

    def waiting(self, r: Request, n: int) -> None:
        for use in self._uses(r):
            use.queued += n

    def running(self, r: Request, sign: int) -> None:
        for use in self._uses(r):
            use.add(r, sign)


def _less(now: Mapping[str, Use], before: Mapping[str, Use]) -> bool:
    """Whether someone holds fewer cores, less memory or fewer GPUs ``now`` than ``before``."""
    for name, old in before.items():
        new = now.get(name) or Use()
        if new.cpus < old.cpus or new.memory_gb < old.memory_gb or new.gpus < old.gpus:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Quotas:
    users: Mapping[str, Quota] = field(default_factory=dict)
    groups: Mapping[str, Quota] = field(default_factory=dict)
    default: Quota = field(default_factory=Quota)

    @classmethod
    def of(cls, access: AccessSettings) -> Quotas:
        return cls(dict(access.user_quotas), dict(access.group_quotas), access.default_quota)

    def user(self, name: str) -> tuple[Quota, str]:
        """The user's quota and the setting that gives it."""
        if name in self.users:
            return self.users[name], f"access.user_quotas.{name}"
        return self.default, "access.default_quota"

    def group(self, name: str | None) -> tuple[Quota, str]:
        if name is not None and name in self.groups:
            return self.groups[name], f"access.group_quotas.{name}"
        return _NONE, ""

    @property
    def limits_running(self) -> bool:
        """Whether any running limit is set (else the scheduler skips the checks)."""
        return any(
            q.running_cpus is not None
            or q.running_memory_gb is not None
            or q.running_gpus is not None
            for q in (self.default, *self.users.values(), *self.groups.values())
        )

    @property
    def counts_use(self) -> bool:
        """Whether any limit reads what users run or have waiting (not the batch size)."""
        return self.limits_running or any(
            q.queued_tasks is not None
            for q in (self.default, *self.users.values(), *self.groups.values())
        )

    def room(self, r: Request, user: Use, group: Use) -> bool:
        """May ``r`` start now, with ``user`` and ``group`` running what they do?"""
        if r.owner is None:
            return True
        return _room(self.user(r.owner)[0], r, user) and _room(
            self.group(r.owner_group)[0], r, group
        )

    def headroom(self, owner: str, use: Use) -> float:
        """Cores the user may still start (infinite without a core limit)."""
        limit = self.user(owner)[0].running_cpus if owner else None
        return float("inf") if limit is None else limit - use.cpus

    # --- admission ---------------------------------------------------------

    def admit(self, owner: str | None, group: str | None, tally: Tally, adding: int = 1) -> None:
        """Refuse (429) ``adding`` more waiting tasks beyond a queued-task limit."""
        if owner is None:
            return
        for who, (quota, where), use in (
            (f"user {owner}", self.user(owner), tally.user(owner)),
            (f"group {group}", self.group(group), tally.group(group)),
        ):
            limit = quota.queued_tasks
            if where and limit is not None and use.queued + adding > limit:
                raise TooManyRequests(
                    f"queued-task quota: {who} may have at most {limit} "
                    f"{'task' if limit == 1 else 'tasks'} waiting "
                    f"({where}.queued_tasks = {limit}) and has {use.queued}; this request adds "
                    f"{adding}. Wait until some start, cancel some, or ask an admin to raise it"
                )

    def could_start(self, r: Request) -> None:
        """Refuse (400) a task that asks for more than its owner may ever run at once."""
        if r.owner is None:
            return
        for who, (quota, where) in (
            (f"user {r.owner}", self.user(r.owner)),
            (f"group {r.owner_group}", self.group(r.owner_group)),
        ):
            if where:
                _never_fits(r, quota, where, who)

    def admit_batch(self, owner: str | None, group: str | None, size: int) -> None:
        """Refuse (400) a batch beyond a batch-size limit."""
        if owner is None:
            return
        for who, (quota, where) in (
            (f"user {owner}", self.user(owner)),
            (f"group {group}", self.group(group)),
        ):
            limit = quota.batch_size
            if where and limit is not None and size > limit:
                raise InvalidRequest(
                    f"batch-size quota: {who} may submit at most {limit} tasks in one batch "
                    f"({where}.batch_size = {limit}); this batch has {size}. Split it into "
                    "batches of at most that many, or ask an admin to raise it"
                )


def _room(quota: Quota, r: Request, use: Use) -> bool:
    return (
        (quota.running_cpus is None or use.cpus + r.cpus <= quota.running_cpus)
        and (
            quota.running_memory_gb is None
            or use.memory_gb + r.memory_gb <= quota.running_memory_gb + 1e-9
        )
        and (quota.running_gpus is None or use.gpus + r.gpus <= quota.running_gpus)
    )


def _never_fits(r: Request, quota: Quota, where: str, who: str) -> None:
    for what, key, asked, limit in (
        ("cores", "running_cpus", r.cpus, quota.running_cpus),
        ("GB of memory", "running_memory_gb", r.memory_gb, quota.running_memory_gb),
        ("GPUs", "running_gpus", r.gpus, quota.running_gpus),
    ):
        if limit is not None and asked > limit + 1e-9:
            raise InvalidRequest(
                f"the task asks for {asked:g} {what} but {who} may run at most {limit:g} "
                f"at once ({where}.{key} = {limit:g}), so it could never start; ask for "
                "less, or ask an admin to raise the quota"
            )


def check_account(
    accounts: Mapping[str, str], owner: str | None, parameters: Mapping[str, str]
) -> None:
    """A user mapped to a Slurm account (access.slurm_accounts) is charged to it alone."""
    mine = accounts.get(owner or "")
    theirs = parameters.get("account")
    if mine is not None and theirs is not None and theirs != mine:
        raise InvalidRequest(
            f"resources.backend_parameters.account={theirs!r}: user {owner}'s jobs are charged "
            f"to Slurm account {mine!r} (access.slurm_accounts.{owner}); leave account out"
        )
