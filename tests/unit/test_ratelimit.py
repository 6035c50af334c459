"""The per-token rate limit's buckets, on a clock the test moves (no I/O, no waiting)."""

from __future__ import annotations

from toolship.api.ratelimit import Buckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_one_request_per_interval() -> None:
    clock = Clock()
    buckets = Buckets(per_second=2, burst=3, clock=clock)
    assert [buckets.take(b"a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take(b"a") == 0.5  # one token comes back every half second
    clock.now += 0.25
    assert buckets.take(b"a") == 0.25
    clock.now += 0.25
    assert buckets.take(b"a") == 0
    assert buckets.take(b"a") == 0.5


def test_a_refused_request_costs_nothing_and_the_bucket_never_overfills() -> None:
    clock = Clock()
    buckets = Buckets(per_second=1, burst=2, clock=clock)
    assert buckets.take(b"a") == buckets.take(b"a") == 0
    for _ in range(10):
        assert buckets.take(b"a") == 1.0
    clock.now += 3600
    assert [buckets.take(b"a") for _ in range(3)] == [0, 0, 1.0]


def test_each_key_has_its_own_bucket() -> None:
    buckets = Buckets(per_second=1, burst=1, clock=Clock())
    assert buckets.take(b"alice") == 0
    assert buckets.take(b"alice") > 0
    assert buckets.take(b"bob") == 0


def test_the_table_is_bounded_and_forgets_the_least_recently_seen() -> None:
    buckets = Buckets(per_second=1, burst=1, clock=Clock(), keys=2)
    for key in (b"a", b"b", b"a", b"c"):  # c pushes out b, seen last before a
        buckets.take(key)
    assert len(buckets) == 2
    assert buckets.take(b"a") > 0  # still remembered: empty
    assert buckets.take(b"b") == 0  # forgotten: a full bucket again
