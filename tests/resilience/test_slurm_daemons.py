"""slurmctld restarted, then a slurmd killed until Slurm declares its node down, and
brought back, under the workload on the Slurm backend.

Jobs live in Slurm, not in the server: while slurmctld is away the server's squeue and
sbatch calls fail and are retried; the jobs go on.  The task holding the node whose
slurmd died ends its attempt SYSTEM_ERROR with a system log naming the node ("node2
failed") and is retried; everything else completes.  The cluster is restored at the
end whatever happens: other tests use it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import SLURM_DIR
from tests.resilience.harness import (
    Bucket,
    Planned,
    check,
    cluster,
    no_containers,
    session,
    submit_workload,
    system_logs,
    untroubled,
    wait_final,
)
from tests.security.crashing import Server, wait_for
from toolship.embedded import _running


def kill(daemon: str, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal the daemon whose pid file is run/``daemon``.pid, and wait until it is gone."""
    pid = int((SLURM_DIR / "run" / f"{daemon}.pid").read_text())
    os.kill(pid, sig)
    wait_for(f"{daemon} to exit", lambda: not _running(pid))


def squeue(task_id: str, *options: str) -> str:
    """squeue's lines about the task's Slurm jobs (pending, running or ending)."""
    out = subprocess.run(
        ["squeue", "--noheader", f"--name=toolship-{task_id}", *options],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.strip()


def node_of(task_id: str) -> str:
    return squeue(task_id, "--states=RUNNING", "--format=%N")


def node_state(node: str) -> str:
    out = subprocess.run(["sinfo", "--noheader", "-n", node, "--format=%T"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    return out.stdout.strip()


def test_slurmctld_restarted_and_a_slurmd_killed(
    on_slurm: None, bucket: Bucket, runs: Path, crashable: Server, busybox: str
) -> None:
    server = crashable.start()
    with session(server) as s:
        # A whole node (2 cores) held for a minute by its first attempt: the node to kill.
        hold = "if [ $TOOLSHIP_ATTEMPT -eq 1 ]; then sleep 60; fi"
        holder = s.client.submit(busybox, ["sh", "-c", hold], cpu=2, retries=1, name="holder")
        node = wait_for("the holder running", lambda: node_of(holder.id))
        workload = submit_workload(s.client, busybox, bucket, runs, "slurm", retries=1)
        kill("slurmctld", signal.SIGTERM)  # a restart, as systemctl does it: state saved
        cluster("start")
        kill(f"slurmd-{node}")
        wait_for(f"Slurm declaring {node} down", lambda: "down" in node_state(node), 60)
        cluster("start")
        cleared = time.monotonic()
        failed = f"node(s) {node} failed"

        def allowed(planned: Planned, task: dict[str, Any]) -> bool:
            return untroubled(planned, task) or (
                task["state"] in ("COMPLETE", "SYSTEM_ERROR") and failed in system_logs(task)
            )

        check("slurmctld restarted, slurmd killed", s.client, workload, bucket, runs, s.watch,
              cleared, allowed)  # fmt: skip
        done = wait_final(s.client, [holder.id])[holder.id]
        print(f"the task on {node}: final {time.monotonic() - cleared:.1f} s after the fault")
        # Its attempt on the killed node names the node, and its retry completes, even
        # when slurmctld's restart lost the first job's record and Slurm handed the retry
        # the same job id: the first attempt's worker, still running on the node, is
        # refused as a worker of an attempt that is over (api/worker.py).
        assert done["state"] == "COMPLETE", system_logs(done)
        first = " ".join(done["logs"][0]["system_logs"])
        assert failed in first, first
        no_containers(holder.id)
    left = [i for i in [holder.id, *workload.ids] if squeue(i, "--format=%i")]
    assert not left, f"Slurm jobs left behind: {left}"
