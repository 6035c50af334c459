"""The rendezvous port of a multi-node Slurm task: free on the node, below the ephemeral range."""

from __future__ import annotations

import socket

from toolship.worker.ranks import free_port


def test_a_port_in_use_is_skipped_for_the_next_free_one() -> None:
    first = free_port(1234)
    assert 29500 <= first < 32768  # Linux gives outgoing connections ports from 32768 on
    with socket.create_server(("", first)):
        second = free_port(1234)
    assert second != first and 29500 <= second < 32768
    assert free_port(1234) == first  # free again once released


def test_the_seed_wraps_around_the_range() -> None:
    assert 29500 <= free_port(10**9) < 32768
