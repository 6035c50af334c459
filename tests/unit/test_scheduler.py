from __future__ import annotations

from toolship.compute.base import Capacity, Request
from toolship.engine.scheduler import Queue, pick


def q(*requests: Request) -> Queue:
    queue = Queue()
    for r in requests:
        queue.add(r)
    return queue


def ids(chosen: list[Request]) -> list[str]:
    return [r.task_id for r in chosen]


def test_two_tasks_wanting_every_core_start_one_at_a_time() -> None:
    queue = q(Request("a", cpus=2, memory_gb=0), Request("b", cpus=2, memory_gb=0))
    assert ids(pick(queue, Capacity(2, 8))) == ["a"]


def test_small_tasks_fill_the_machine_in_age_order() -> None:
    queue = q(*(Request(str(i), cpus=1, memory_gb=1) for i in range(5)))
    assert ids(pick(queue, Capacity(3, 8))) == ["0", "1", "2"]


def test_memory_is_accounted() -> None:
    queue = q(Request("big", cpus=1, memory_gb=6), Request("also-big", cpus=1, memory_gb=6))
    assert ids(pick(queue, Capacity(4, 8))) == ["big"]


def test_gpus_are_accounted() -> None:
    queue = q(
        Request("g1", cpus=1, memory_gb=0, gpus=1), Request("g2", cpus=1, memory_gb=0, gpus=1)
    )
    assert ids(pick(queue, Capacity(4, 8, gpus=1))) == ["g1"]


def test_higher_priority_starts_first_even_if_younger() -> None:
    queue = q(
        Request("old", cpus=2, memory_gb=0), Request("urgent", cpus=2, memory_gb=0, priority=5)
    )
    assert ids(pick(queue, Capacity(2, 8))) == ["urgent"]


def test_a_smaller_task_may_pass_one_that_does_not_fit_yet() -> None:
    queue = q(Request("wide", cpus=4, memory_gb=0), Request("narrow", cpus=1, memory_gb=0))
    assert ids(pick(queue, Capacity(2, 8))) == ["narrow"]


def test_pick_leaves_the_free_capacity_alone() -> None:
    free = Capacity(2, 8)
    pick(q(Request("a", cpus=1, memory_gb=1)), free)
    assert (free.cpus, free.memory_gb) == (2, 8)


def test_nothing_starts_on_a_full_machine() -> None:
    queue = q(*(Request(str(i), cpus=1, memory_gb=0) for i in range(1000)))
    assert pick(queue, Capacity(0, 8)) == []


def test_queue_removal_keeps_order() -> None:
    queue = q(*(Request(str(i), cpus=1, memory_gb=0) for i in range(4)))
    queue.remove("1")
    assert [r.task_id for r in queue] == ["0", "2", "3"]
    assert "1" not in queue
    assert len(queue) == 3
