"""The network between the compute nodes' workers and the server cut for a minute.

On the Slurm backend each job's worker reports to ``slurm.server_url``; here that is a
link the test cuts (``Proxy.drop`` of tests/integration/servers.py: traffic dropped, not
refused) while
the workload runs.  Workers that cannot reach the server hold their reports and keep
their jobs; workers starting meanwhile wait for their job's description.  Nothing is
lost and nothing runs twice: once the link is back, every task completes in the attempts
it takes when nothing goes wrong, and the attempts the cut caught say so ("the toolship
server did not answer this attempt's worker on node1 for 58 s …").
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.servers import Proxy
from tests.resilience.harness import (
    Bucket,
    check,
    no_containers,
    session,
    submit_workload,
    system_logs,
    wait_final,
)
from tests.security.crashing import Server, wait_for

CUT_SECONDS = 60.0
HELD = "the toolship server did not answer this attempt's worker on "


@pytest.fixture
def link(on_slurm: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    """The workers' way to the server: the link, pointed at the server once it listens."""
    made = Proxy(0)
    made.start()
    monkeypatch.setenv("TOOLSHIP_SLURM__SERVER_URL", made.url)
    try:
        yield made
    finally:
        made.cut()


def test_the_workers_network_cut_for_a_minute(
    link: Proxy, bucket: Bucket, runs: Path, crashable: Server, busybox: str
) -> None:
    server = crashable.start()
    port = urlsplit(server.url).port
    assert port is not None
    link.target = port
    with session(server) as s:
        # Runs through the cut: it reports RUNNING before, its end after.
        through = s.client.submit(
            busybox, ["sh", "-c", f"sleep {CUT_SECONDS / 2:.0f}"], name="through"
        )
        wait_for("a task running past the cut", lambda: s.client.get(through.id).state.value
                 == "RUNNING", 60)  # fmt: skip
        workload = submit_workload(s.client, busybox, bucket, runs, "cut")
        link.drop()
        cut_at = time.monotonic()
        time.sleep(CUT_SECONDS)
        tried = len(link.held)
        link.restore()
        cleared = time.monotonic()
        print(f"\nlink cut {cleared - cut_at:.0f} s; {tried} connections opened meanwhile")

        outcome = check("the workers' network cut", s.client, workload, bucket, runs, s.watch,
                        cleared)  # fmt: skip
        done = wait_final(s.client, [through.id])[through.id]
        assert done["state"] == "COMPLETE", system_logs(done)
        held_for = re.search(HELD + r"\S+ for (\d+) s", system_logs(done))
        assert held_for, system_logs(done)
        assert int(held_for[1]) >= CUT_SECONDS / 2, system_logs(done)  # the cut, not a blip
        held = [n for n, t in outcome.tasks.items() if HELD in system_logs(t)]
        print("attempts whose workers held their reports:", ", ".join(["through", *held]))
        no_containers(through.id)
