"""Multi-node tasks: every executor runs once per rank, each rank knowing its place.

A task with ``nodes: N`` has N ranks.  Each executor's command line is
wrapped twice: a *launcher* starts one copy per rank (``srun`` across the
nodes of a Slurm job; N local processes on one machine), and a tiny ``sh``
*rank wrapper* in every copy exports the rank's own variables, gives the
container of rank r > 0 its own name, and sends that rank's output to its own
capture files, ``<capture>.rank<r>`` in the attempt's ``logs/`` (rank 0's output
is the executor's own capture); the worker copies them beside a declared
stdout/stderr file as ``<file>.rank<r>``.  When its command ends, the wrapper
writes the rank's exit code and node to ``exec-<i>.rank<r>.exit`` in ``logs/``
(:func:`read_rank_exits` reads them into the attempt's runtime record, which
``toolship show`` lists).

Where the ranks meet: ranks on one machine share a network namespace of their own
(a podman pod per executor, made by :func:`open_pod` and removed by
:func:`close_pod`), reach each other at 127.0.0.1 and see nothing of the host's
network — its loopback services included; the pod reaches outside only when the
task asks for a network.  Slurm ranks run on different hosts and find each other
over the hosts' network (``host_network``): the operator allows that with a
setting, and admission refuses it otherwise.

Variables every rank sees (also documented in the README):

``TOOLSHIP_NODE_RANK`` / ``RANK`` / ``NODE_RANK``   0 … N-1
``TOOLSHIP_NUM_NODES`` / ``WORLD_SIZE`` / ``NNODES``   N
``TOOLSHIP_MAIN_ADDR`` / ``MASTER_ADDR``   address of rank 0's node (127.0.0.1 locally)
``TOOLSHIP_MAIN_PORT`` / ``MASTER_PORT``   a port for the rendezvous
``TOOLSHIP_HOSTFILE``   a file listing the nodes, one per line (MPI-style)
``TOOLSHIP_NODE_NAME``   the node the rank runs on (Slurm's node name)
``LOCAL_RANK`` (0) and ``OMPI_COMM_WORLD_RANK``/``PMI_RANK`` (= the rank)
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from toolship.errors import RuntimeUnavailable
from toolship.records import RankRecord
from toolship.runtime import ExecSpec, Runtime
from toolship.worker import taskfs

__all__ = [
    "HOSTFILE",
    "RANK_VARIABLES",
    "Ranks",
    "close_pod",
    "local_ranks",
    "open_pod",
    "pod_name",
    "rank_exit_file",
    "rank_name",
    "read_rank_exits",
    "slurm_ranks",
]

HOSTFILE = "/toolship/hostfile"  # where the hostfile appears inside the container
# Set per rank by the rank wrapper (so passed through, not given a value, by the runtime).
RANK_VARIABLES = (
    "TOOLSHIP_NODE_RANK",
    "RANK",
    "NODE_RANK",
    "GROUP_RANK",
    "OMPI_COMM_WORLD_RANK",
    "PMI_RANK",
    "TOOLSHIP_NODE_NAME",
)

# $1 container name, $2 stdout capture, $3 stderr capture (the server's files in logs/, never
# a path the task can write), $4 the prefix of the ranks' exit files, then the command.  The
# rank comes from Slurm (SLURM_NODEID) or from the local launcher (TOOLSHIP_NODE_RANK).  The
# command is not exec'd: the wrapper outlives it to record "<exit code> <node>".
_RANK_SH = """\
rank=${SLURM_NODEID:-${TOOLSHIP_NODE_RANK:-0}}
node=${SLURMD_NODENAME:-$(hostname)}
export TOOLSHIP_NODE_RANK=$rank RANK=$rank NODE_RANK=$rank GROUP_RANK=$rank \
OMPI_COMM_WORLD_RANK=$rank PMI_RANK=$rank TOOLSHIP_NODE_NAME=$node
name=$1 out=$2 err=$3 ended=$4.rank$rank.exit
shift 4
if [ "$rank" = 0 ]; then
  "$@"
else
  for a in "$@"; do
    shift
    if [ "$a" = "$name" ]; then set -- "$@" "$name-r$rank"; else set -- "$@" "$a"; fi
  done
  if [ "$out" = "$err" ]; then
    "$@" >"$out.rank$rank" 2>&1
  else
    "$@" >"$out.rank$rank" 2>"$err.rank$rank"
  fi
fi
rc=$?
printf '%s %s\\n' "$rc" "$node" >"$ended"
exit "$rc"
"""

# $1 the number of ranks, then the command: start one copy per rank, exit with the first
# failing rank's code (0 when all succeed).
_LOCAL_FANOUT = """\
n=$1
shift
pids=
r=0
while [ "$r" -lt "$n" ]; do
  TOOLSHIP_NODE_RANK=$r "$@" &
  pids="$pids $!"
  r=$((r + 1))
done
rc=0
for p in $pids; do
  wait "$p" || { c=$?; [ "$rc" -eq 0 ] && rc=$c; }
done
exit "$rc"
"""


def rank_name(name: str, rank: int) -> str:
    """The container name of one rank (rank 0 keeps the executor's own name)."""
    return name if rank == 0 else f"{name}-r{rank}"


@dataclass(frozen=True, slots=True)
class Ranks:
    count: int
    hosts: tuple[str, ...]  # one line per rank in the hostfile
    main_addr: str
    port: int
    launcher: tuple[str, ...]  # argv prefix that runs what follows once per rank
    # True when the ranks span hosts (Slurm) and meet over the hosts' network; False when
    # they share a private network namespace on this machine (a pod).
    host_network: bool = False

    def environment(self) -> dict[str, str]:
        """The variables that are the same for every rank."""
        n = str(self.count)
        port = str(self.port)
        return {
            "TOOLSHIP_NUM_NODES": n,
            "WORLD_SIZE": n,
            "NNODES": n,
            "LOCAL_RANK": "0",
            "TOOLSHIP_MAIN_ADDR": self.main_addr,
            "MASTER_ADDR": self.main_addr,
            "TOOLSHIP_MAIN_PORT": port,
            "MASTER_PORT": port,
            "TOOLSHIP_HOSTFILE": HOSTFILE,
        }

    def hostfile_text(self) -> str:
        return "".join(f"{h}\n" for h in self.hosts)

    def wrap(
        self, argv: list[str], name: str, stdout: Path, stderr: Path, exits: Path
    ) -> list[str]:
        """``argv`` once per rank; ``exits``: the prefix of the ranks' exit files."""
        return [
            *self.launcher,
            "sh",
            "-c",
            _RANK_SH,
            "toolship-rank",
            name,
            str(stdout),
            str(stderr),
            str(exits),
            *argv,
        ]


def rank_exit_file(exits: Path, rank: int) -> Path:
    """Where the rank wrapper writes rank ``rank``'s exit code and node."""
    return exits.with_name(f"{exits.name}.rank{rank}.exit")


def read_rank_exits(exits: Path, executor: int, count: int) -> list[RankRecord]:
    """Every rank's end, as its wrapper wrote it (no code: killed, or never started)."""
    records = []
    for rank in range(count):
        words = taskfs.read_tail(rank_exit_file(exits, rank), 512, "rank exit file").split()
        code = int(words[0]) if words and words[0].isdigit() else None
        node = words[1].decode(errors="replace") if len(words) > 1 else None
        records.append(RankRecord(executor=executor, rank=rank, node=node, exit_code=code))
    return records


def local_ranks(count: int, port: int = 29500) -> Ranks:
    """N ranks on this machine (test multi-node code on a laptop), in one pod per executor.

    The pod's network namespace is the ranks' own, so any port is free there and
    127.0.0.1 is rank 0 for every rank.
    """
    return Ranks(
        count=count,
        hosts=("localhost",) * count,
        main_addr="127.0.0.1",
        port=port,
        launcher=("sh", "-c", _LOCAL_FANOUT, "toolship-ranks", str(count)),
    )


def pod_name(name: str) -> str:
    """The pod of one executor's ranks (never equal to a rank's container name)."""
    return f"{name}-pod"


async def open_pod(runtime: Runtime, spec: ExecSpec) -> None:
    """Make the pod ``spec.pod`` (afresh: a pod left by an earlier try is replaced)."""
    for argv in runtime.pod_commands(spec):
        done = await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
            hint = (
                "; install catatonit (podman builds its pod image with it: "
                "apt-get install catatonit)"
                if "catatonit" in detail
                else ""
            )
            raise RuntimeUnavailable(
                f"cannot make the private network of the task's ranks ({' '.join(argv[:3])} "
                f"{spec.pod}: {detail}){hint}"
            )


async def close_pod(runtime: Runtime, pod: str) -> None:
    """Remove the pod of an executor's ranks (and any rank container still in it)."""
    for argv in runtime.remove_pod_commands(pod):
        await asyncio.to_thread(
            subprocess.run, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )


def _scontrol(*args: str) -> str:
    return subprocess.run(
        ["scontrol", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


# Rendezvous ports: below Linux's ephemeral range (32768 on), so no outgoing connection
# of the host holds one (a port from 29500 + job id % 20000 once collided with one).
_PORTS = range(29500, 32768)


def free_port(seed: int) -> int:
    """A port of ``_PORTS`` free on this host now, tried from one the seed picks.

    The batch step runs on the job's first node, where rank 0 listens; a port that
    cannot be bound here is skipped (another job's rendezvous, a service).
    """
    for offset in range(len(_PORTS)):
        port = _PORTS[(seed + offset) % len(_PORTS)]
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("", port))
            except OSError:
                continue
            return port
    raise RuntimeUnavailable(
        f"no free port between {_PORTS.start} and {_PORTS.stop - 1} on this node for the "
        "ranks' rendezvous: free some, or run fewer multi-node tasks at once"
    )


def slurm_ranks(count: int) -> Ranks:
    """The ranks of the Slurm job this process runs in (call it on the batch node)."""
    hosts = tuple(_scontrol("show", "hostnames", os.environ["SLURM_JOB_NODELIST"]).split())
    main_addr = hosts[0]
    for word in _scontrol("show", "node", "-o", hosts[0]).split():
        if word.startswith("NodeAddr="):
            main_addr = word.removeprefix("NodeAddr=")
    job_id = int(os.environ.get("SLURM_JOB_ID", "0"))
    return Ranks(
        count=count,
        hosts=hosts,
        main_addr=main_addr,
        port=free_port(job_id),
        host_network=True,
        launcher=(
            "srun",
            f"--nodes={count}",
            f"--ntasks={count}",
            "--ntasks-per-node=1",
            "--kill-on-bad-exit=1",
            "--quiet",
        ),
    )
