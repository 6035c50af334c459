"""How the others reach a replica: ``server.advertise_url``, and ``slurm.server_url`` after it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from toolship.config import Settings
from toolship.server import reachable

HOME = Path("/nonexistent")


def test_a_replica_listening_everywhere_is_reached_by_its_hosts_name() -> None:
    settings = reachable(Settings(home=HOME), "https", "0.0.0.0", 8443)
    url = f"https://{socket.gethostname()}:8443"
    assert settings.server.advertise_url == url
    assert settings.slurm.server_url == url  # the workers report to this replica


def test_what_the_operator_set_stays() -> None:
    given = Settings(
        home=HOME,
        server={"advertise_url": "http://r1.example.org:8001/"},
        slurm={"server_url": "https://toolship.example.org"},
    )
    settings = reachable(given, "http", "127.0.0.1", 8001)
    assert settings.server.advertise_url == "http://r1.example.org:8001"
    assert settings.slurm.server_url == "https://toolship.example.org"  # the load balancer
    alone = reachable(given.model_copy(update={"slurm": Settings(home=HOME).slurm}),
                       "http", "127.0.0.1", 8001)  # fmt: skip
    assert alone.slurm.server_url == "http://r1.example.org:8001"


def test_an_address_that_is_no_url_is_refused_saying_what_to_give() -> None:
    with pytest.raises(ValidationError, match=r"give http\(s\)://HOST:PORT of this replica"):
        Settings(home=HOME, server={"advertise_url": "r1.example.org:8001"})
