"""Quotas and fair share, pure: the ledger, the order of owners, what a pick starts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolship.compute.base import Capacity, Request
from toolship.config import AccessSettings, Quota
from toolship.engine.core import EngineCore
from toolship.engine.events import AttemptExited, Dispatch, Start, TaskCreated
from toolship.engine.fairshare import Ledger, Shares, Usage, order
from toolship.engine.quotas import Quotas, Tally, check_account
from toolship.engine.scheduler import Accounts, Queue, pick
from toolship.errors import ConfigError, InvalidRequest, TooManyRequests
from toolship.states import TaskState

HOUR = 3600.0


def r(task_id: str, owner: str | None, cpus: int = 1, *, group: str | None = None,
      priority: int = 0, memory_gb: float = 0) -> Request:  # fmt: skip
    return Request(task_id, cpus, memory_gb, priority=priority, owner=owner, owner_group=group)


def queue_of(*requests: Request) -> Queue:
    q = Queue()
    for x in requests:
        q.add(x)
    return q


def ids(chosen: list[Request]) -> list[str]:
    return [x.task_id for x in chosen]


# --- usage ------------------------------------------------------------------


def test_usage_halves_every_half_life() -> None:
    u = Usage(half_life=HOUR)
    u.add("alice", 100.0, now=0)
    assert u.at("alice", 0) == 100
    assert u.at("alice", HOUR) == pytest.approx(50)
    assert u.at("alice", 3 * HOUR) == pytest.approx(12.5)
    assert u.at("bob", HOUR) == 0


def test_a_running_attempt_counts_what_it_has_held_so_far_and_its_end_adds_it() -> None:
    ledger = Ledger(half_life=1e9)
    ledger.start(r("t", "alice", cpus=2, group="lab"), now=10)
    assert ledger.users.at("alice", 15) == pytest.approx(10)  # 2 cores x 5 s
    assert ledger.groups.at("lab", 15) == pytest.approx(10)
    ledger.stop(r("t", "alice", cpus=2, group="lab"), now=20)
    assert ledger.users.at("alice", 100) == pytest.approx(20)  # 2 x 10 s, no longer growing


# --- the order of owners ------------------------------------------------------


def waiting(*owners: tuple[str, str | None]) -> list[tuple[str, str | None, int]]:
    return [(o, g, i) for i, (o, g) in enumerate(owners)]


def test_the_user_furthest_below_its_share_goes_first() -> None:
    ledger = Ledger(half_life=1e9)
    ledger.users.add("alice", 500, now=0)
    ledger.users.add("bob", 100, now=0)
    assert order(waiting(("alice", None), ("bob", None)), ledger, Shares(), now=1) == [
        "bob",
        "alice",
    ]


def test_weights_scale_the_share() -> None:
    ledger = Ledger(half_life=1e9)
    ledger.users.add("alice", 100, now=0)
    ledger.users.add("bob", 150, now=0)
    shares = Shares(user_weights={"bob": 2})  # bob's 150 is 75 per unit of share
    assert order(waiting(("alice", None), ("bob", None)), ledger, shares, now=1) == [
        "bob",
        "alice",
    ]


def test_equal_users_go_by_their_groups_usage_then_by_age() -> None:
    ledger = Ledger(half_life=1e9)
    ledger.groups.add("busy-lab", 1000, now=0)
    rows = waiting(("alice", "busy-lab"), ("bob", "quiet-lab"), ("carol", "quiet-lab"))
    assert order(rows, ledger, Shares(), now=1) == ["bob", "carol", "alice"]


def test_old_usage_fades_so_yesterdays_heavy_user_is_level_again() -> None:
    ledger = Ledger(half_life=HOUR)
    ledger.users.add("alice", 1000, now=0)
    ledger.users.add("bob", 10, now=10 * HOUR)
    rows = waiting(("alice", None), ("bob", None))
    assert order(rows, ledger, Shares(half_life=HOUR), now=10 * HOUR) == ["alice", "bob"]


def test_off_is_oldest_first_whatever_the_usage() -> None:
    ledger = Ledger(half_life=1e9)
    ledger.users.add("alice", 1e6, now=0)
    rows = waiting(("alice", None), ("bob", None))
    assert order(rows, ledger, Shares(on=False), now=1) == ["alice", "bob"]


def test_a_weight_of_zero_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"access.user_weights.bob is 0.0: a weight must"):
        Shares.of(AccessSettings(user_weights={"bob": 0}))


# --- picks among owners -------------------------------------------------------


def test_starts_planned_together_spread_over_users_level_with_each_other() -> None:
    q = queue_of(*(r(f"a{i}", "alice") for i in range(4)), *(r(f"b{i}", "bob") for i in range(4)))
    assert ids(pick(q, Capacity(4, 8), accounts=Accounts())) == ["a0", "b0", "a1", "b1"]


def test_a_newcomer_gets_the_free_cores_until_level_with_the_heavy_user() -> None:
    accounts = Accounts()
    accounts.ledger.users.add("alice", 100, now=0)
    q = queue_of(*(r(f"a{i}", "alice") for i in range(4)), *(r(f"b{i}", "bob") for i in range(4)))
    assert ids(pick(q, Capacity(2, 8), accounts=accounts, now=1)) == ["b0", "b1"]


def test_priorities_still_order_a_users_own_tasks() -> None:
    q = queue_of(r("b-low", "bob"), r("b-high", "bob", priority=9), r("a", "alice"))
    accounts = Accounts()
    accounts.ledger.users.add("alice", 100, now=0)
    assert ids(pick(q, Capacity(1, 8), accounts=accounts, now=1)) == ["b-high"]


def test_fair_share_off_is_one_line_by_priority_then_age() -> None:
    q = queue_of(r("a0", "alice"), r("a1", "alice"), r("b0", "bob", priority=1), r("b1", "bob"))
    off = Accounts(shares=Shares(on=False))
    assert ids(pick(q, Capacity(3, 8), accounts=off)) == ["b0", "a0", "a1"]
    assert ids(q) == ["b0", "a0", "a1", "b1"]


def test_a_user_at_his_running_cores_quota_waits_while_others_start() -> None:
    accounts = Accounts(quotas=Quotas(users={"bob": Quota(running_cpus=1)}))
    accounts.tally.running(r("b-running", "bob"), 1)
    q = queue_of(r("b1", "bob"), r("a1", "alice"), r("a2", "alice"))
    assert ids(pick(q, Capacity(2, 8), accounts=accounts)) == ["a1", "a2"]


def test_group_quotas_hold_memory_and_gpus_of_all_members_together() -> None:
    quotas = Quotas(groups={"lab": Quota(running_memory_gb=4, running_gpus=0)})
    q = queue_of(r("a", "alice", group="lab", memory_gb=3), r("b", "bob", group="lab", memory_gb=3),
                 r("c", "carol", group="other", memory_gb=3))  # fmt: skip
    assert sorted(ids(pick(q, Capacity(4, 16), accounts=Accounts(quotas=quotas)))) == ["a", "c"]


def test_a_user_at_quota_with_a_long_queue_is_not_scanned() -> None:
    """100 000 of bob's tasks behind his quota: his line is left after its first look."""
    accounts = Accounts(quotas=Quotas(users={"bob": Quota(running_cpus=2)}))
    accounts.tally.running(r("b-running", "bob", cpus=2), 1)
    q = queue_of(*(r(f"b{i}", "bob") for i in range(100_000)), r("a", "alice"))
    looked: list[str] = []
    line = q.lines["bob"]
    original = type(line).__iter__

    def counting(self: object) -> object:
        for x in original(line):
            looked.append(x.task_id)
            yield x

    line.__class__ = type("Counting", (type(line),), {"__iter__": counting})
    assert ids(pick(q, Capacity(4, 8), accounts=accounts)) == ["a"]
    assert len(looked) <= 1


OWNER_NAMES = ("alice", "bob", "carol")


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3), st.integers(0, 2)), max_size=40),
    st.lists(st.integers(0, 3), min_size=3, max_size=3),
    st.integers(1, 8),
    st.booleans(),
)
def test_a_pick_never_exceeds_capacity_or_a_quota_and_leaves_no_fitting_task_behind(
    tasks: list[tuple[int, int, int]], running: list[int], cores: int, fair: bool
) -> None:
    quotas = Quotas(users={"bob": Quota(running_cpus=3)}, groups={"lab": Quota(running_cpus=4)})
    accounts = Accounts(quotas=quotas, shares=Shares(on=fair))
    for i, (name, n) in enumerate(zip(OWNER_NAMES, running, strict=True)):
        accounts.tally.running(r(f"run{i}", name, n, group="lab" if name != "carol" else None), 1)
    q = queue_of(*(
        r(f"t{i}", OWNER_NAMES[o], c, priority=p, group="lab" if o < 2 else None)
        for i, (o, c, p) in enumerate(tasks)
    ))  # fmt: skip
    chosen = pick(q, Capacity(cores, 64), accounts=accounts)
    assert sum(x.cpus for x in chosen) <= cores
    use = {name: n for name, n in zip(OWNER_NAMES, running, strict=True)}
    lab = use["alice"] + use["bob"]
    for x in chosen:
        use[x.owner or ""] += x.cpus
        lab += x.cpus if x.owner_group == "lab" else 0
    assert use["bob"] <= max(3, running[1]) and lab <= max(4, running[0] + running[1])
    left = cores - sum(x.cpus for x in chosen)
    for x in q:  # whatever was left behind did not fit, or its quota had no room
        if x in chosen or x.cpus > left:
            continue
        name = x.owner or ""
        over_bob = name == "bob" and use["bob"] + x.cpus > 3
        over_lab = x.owner_group == "lab" and lab + x.cpus > 4
        assert over_bob or over_lab, f"{x.task_id} fitted but was left behind"


# --- the core keeps the books ---------------------------------------------------


def test_the_core_counts_waiting_and_running_use_and_usage_when_attempts_end() -> None:
    core = EngineCore(Capacity(2, 8), accounts=Accounts())
    for x in (r("a", "alice", group="lab"), r("b", "alice", group="lab")):
        assert core.handle(TaskCreated(x)) == []
    tally = core.accounts.tally
    assert tally.user("alice").queued == 2
    out = core.handle(Dispatch(now=100.0))
    assert [i.task_id for i in out if isinstance(i, Start)] == ["a", "b"]
    assert (tally.user("alice").queued, tally.user("alice").cpus, tally.group("lab").cpus) == (
        0,
        2,
        2,
    )
    core.handle(AttemptExited("a", TaskState.COMPLETE, now=130.0))
    assert tally.user("alice").cpus == 1
    assert core.accounts.ledger.users.past("alice", 130.0) == pytest.approx(30.0)


# --- admission ---------------------------------------------------------------------


def test_a_queued_task_beyond_the_limit_is_a_429_naming_limit_setting_and_use() -> None:
    quotas = Quotas(users={"bob": Quota(queued_tasks=2)})
    tally = Tally()
    for i in range(2):
        tally.waiting(r(f"q{i}", "bob"), 1)
    with pytest.raises(TooManyRequests) as e:
        quotas.admit("bob", None, tally)
    assert str(e.value) == (
        "queued-task quota: user bob may have at most 2 tasks waiting "
        "(access.user_quotas.bob.queued_tasks = 2) and has 2; this request adds 1. "
        "Wait until some start, cancel some, or ask an admin to raise it"
    )
    quotas.admit("alice", None, tally)  # the default quota has no limit


def test_the_group_and_default_quotas_apply_too() -> None:
    quotas = Quotas(groups={"lab": Quota(queued_tasks=1)}, default=Quota(batch_size=10))
    tally = Tally()
    tally.waiting(r("q", "alice", group="lab"), 1)
    with pytest.raises(TooManyRequests, match=r"group lab .* \(access.group_quotas.lab"):
        quotas.admit("bob", "lab", tally)
    with pytest.raises(
        InvalidRequest, match=r"access.default_quota.batch_size = 10\); this batch has 11"
    ):
        quotas.admit_batch("carol", None, 11)
    quotas.admit_batch("carol", None, 10)


def test_a_task_bigger_than_its_running_quota_is_refused_as_it_could_never_start() -> None:
    quotas = Quotas(users={"bob": Quota(running_cpus=2)})
    with pytest.raises(InvalidRequest, match=r"asks for 4 cores but user bob may run at most 2"):
        quotas.could_start(r("big", "bob", cpus=4))


def test_a_task_naming_another_slurm_account_than_its_owners_is_refused() -> None:
    accounts = {"bob": "proj-bob"}
    check_account(accounts, "bob", {"account": "proj-bob"})
    check_account(accounts, "alice", {"account": "anything"})  # not mapped: hers to name
    with pytest.raises(InvalidRequest, match=r"user bob's jobs are charged to Slurm account"):
        check_account(accounts, "bob", {"account": "proj-alice"})
