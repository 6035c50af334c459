"""Multi-node ranks: the rendezvous port of a Slurm task, and a failed executor's exit code."""

from __future__ import annotations

import socket

from toolship.worker.ranks import first_failure, free_port


def test_a_port_in_use_is_skipped_for_the_next_free_one() -> None:
    first = free_port(1234)
    assert 29500 <= first < 32768  # Linux gives outgoing connections ports from 32768 on
    with socket.create_server(("", first)):
        second = free_port(1234)
    assert second != first and 29500 <= second < 32768
    assert free_port(1234) == first  # free again once released


def test_the_seed_wraps_around_the_range() -> None:
    assert 29500 <= free_port(10**9) < 32768


def test_a_multi_node_executor_fails_with_its_first_failed_rank_s_own_code() -> None:
    """srun reports the highest code: a rank stopped (143) because another failed (3)
    would hide the failure."""
    assert first_failure(143, [143, 3]) == 3
    assert first_failure(143, [None, 3]) == 3  # killed before its wrapper wrote a code
    assert first_failure(5, [0, 7, 5]) == 7  # the first by number when two failed
    assert first_failure(137, [137, 137]) == 137  # nothing failed of its own: as it is
    assert first_failure(0, [0, 0]) == 0 and first_failure(None, [None]) is None
