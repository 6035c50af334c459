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

MPI's own launcher (backend parameter ``mpi=launcher``): rank 0 runs the command
(``mpirun --hostfile $TOOLSHIP_HOSTFILE …``) and every other rank a small agent
(:mod:`toolship.worker.mpi_agent`, mounted at ``/toolship/mpi-agent``) that runs what
rank 0's ``mpirun`` starts on its host: Open MPI's rsh launcher is pointed at the
agent (``OMPI_MCA_plm_rsh_agent``), as Kubeflow's MPI operator points it at
``kubectl exec``.  The hostfile names one host per rank with ``slots=`` the task's
cores, and a per-attempt secret (``/toolship/mpi-secret``) keeps everything else out.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from toolship.errors import RuntimeUnavailable
from toolship.records import RankRecord
from toolship.runtime import ExecSpec, Mount, Runtime
from toolship.worker import taskfs
from toolship.worker.mpi_agent import SECRET_FILE

__all__ = [
    "HOSTFILE",
    "MPI_AGENT",
    "RANK_VARIABLES",
    "Ranks",
    "close_pod",
    "first_failure",
    "local_ranks",
    "open_pod",
    "pod_name",
    "rank_exit_file",
    "rank_name",
    "read_rank_exits",
    "slurm_ranks",
]

HOSTFILE = "/toolship/hostfile"  # where the hostfile appears inside the container
MPI_AGENT = "/toolship/mpi-agent"  # where mpi_agent.py appears (mpi=launcher)
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
# command is not exec'd: the wrapper outlives it to record "<exit code> <node>" ("- <node>"
# from its start: a rank killed before it ends, srun stopping it for another's failure,
# still says where it ran).
_RANK_SH = """\
rank=${SLURM_NODEID:-${TOOLSHIP_NODE_RANK:-0}}
node=${SLURMD_NODENAME:-$(hostname)}
export TOOLSHIP_NODE_RANK=$rank RANK=$rank NODE_RANK=$rank GROUP_RANK=$rank \
OMPI_COMM_WORLD_RANK=$rank PMI_RANK=$rank TOOLSHIP_NODE_NAME=$node
name=$1 out=$2 err=$3 ended=$4.rank$rank.exit
shift 4
printf -- '- %s\\n' "$node" >"$ended"
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


# mpi=launcher: every rank's container runs this around the command (then $@).  python3
# missing is named here, not left to Open MPI's "not found" in the middle of mpirun.
_MPI_SH = f"""\
command -v python3 >/dev/null 2>&1 || {{
  echo "toolship: backend parameter mpi=launcher runs a small Python agent in every rank's \
container, and this image has no python3: install python3 in the image (e.g. apt-get \
install python3), or leave mpi=launcher out (mpirun then starts every MPI process in rank \
0's container)" >&2
  exit 127
}}
exec python3 {MPI_AGENT} --launch "$@"
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
    # mpi=launcher: rank 0's mpirun starts the MPI processes of every rank through the
    # agent, which listens on rank 0's mpi_port; each host has ``slots`` (the task's cores).
    mpi: bool = False
    mpi_port: int = 0
    slots: int = 1

    def environment(self) -> dict[str, str]:
        """The variables that are the same for every rank."""
        n = str(self.count)
        port = str(self.port)
        env = {
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
        if self.mpi:
            env |= {
                "TOOLSHIP_MPI_PORT": str(self.mpi_port),
                # Open MPI 4 (ORTE): its rsh launcher runs `python3 AGENT HOST orted …`, from
                # mpirun itself (no tree of daemons starting daemons), with the hostfile's
                # names kept whole (the agent knows the ranks by them).
                "OMPI_MCA_plm_rsh_agent": f"python3 {MPI_AGENT}",
                "OMPI_MCA_plm_rsh_no_tree_spawn": "1",
                "OMPI_MCA_orte_keep_fqdn_hostnames": "1",
            }
            if not self.host_network:  # a pod: loopback is the ranks' only network
                env |= {"OMPI_MCA_oob_tcp_if_include": "lo", "OMPI_MCA_btl_tcp_if_include": "lo"}
        return env

    def hostfile_text(self) -> str:
        slots = f" slots={self.slots}" if self.mpi else ""
        return "".join(f"{h}{slots}\n" for h in self.hosts)

    def command(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        """What each rank's container runs: with mpi=launcher, the agent around ``argv``."""
        return ("sh", "-c", _MPI_SH, "toolship-mpi", *argv) if self.mpi else argv

    def files(self, base: Path) -> list[Mount]:
        """Write the ranks' files into the attempt directory ``base``; their mounts."""
        hostfile = base / "hostfile"
        hostfile.write_text(self.hostfile_text())
        mounts = [Mount(host=hostfile, container=HOSTFILE, readonly=True)]
        if self.mpi:
            agent, secret = base / "mpi-agent", base / "mpi-secret"
            agent.write_bytes(Path(__file__).with_name("mpi_agent.py").read_bytes())
            secret.write_text(secrets.token_hex(32))  # base is the task's own (0700)
            mounts += [
                Mount(host=agent, container=MPI_AGENT, readonly=True),
                Mount(host=secret, container=SECRET_FILE, readonly=True),
            ]
        return mounts

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


# What a launcher's stop of the other ranks leaves them (SIGTERM, SIGKILL): srun
# --kill-on-bad-exit, or the local launcher, once one rank has failed.
_STOPPED = (128 + 15, 128 + 9)


def first_failure(code: int | None, ends: list[int | None]) -> int | None:
    """A multi-node executor's exit code: the first rank (by number) that failed of its
    own accord, else the launcher's ``code``.

    Once a rank fails the launcher stops the others; one still running then ends with
    143 (or 137), and srun reports the highest code, which would hide the real failure.
    """
    if not code:
        return code
    own = [c for c in ends if c is not None and c != 0 and c not in _STOPPED]
    return own[0] if own else code


def read_rank_exits(exits: Path, executor: int, count: int) -> list[RankRecord]:
    """Every rank's end, as its wrapper wrote it (no code: killed, or never started)."""
    records = []
    for rank in range(count):
        words = taskfs.read_tail(rank_exit_file(exits, rank), 512, "rank exit file").split()
        code = int(words[0]) if words and words[0].isdigit() else None
        node = words[1].decode(errors="replace") if len(words) > 1 else None
        records.append(RankRecord(executor=executor, rank=rank, node=node, exit_code=code))
    return records


def local_ranks(count: int, port: int = 29500, *, mpi: bool = False, slots: int = 1) -> Ranks:
    """N ranks on this machine (test multi-node code on a laptop), in one pod per executor.

    The pod's network namespace is the ranks' own, so any port is free there and
    127.0.0.1 is rank 0 for every rank.  With mpi=launcher the hostfile names each rank
    (rank0, rank1, …) so that mpirun starts processes in every rank's container, not
    all in rank 0's (as "localhost" N times would).
    """
    return Ranks(
        count=count,
        hosts=tuple(f"rank{r}" for r in range(count)) if mpi else ("localhost",) * count,
        main_addr="127.0.0.1",
        port=port,
        launcher=("sh", "-c", _LOCAL_FANOUT, "toolship-ranks", str(count)),
        mpi=mpi,
        mpi_port=port + 1,
        slots=slots,
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


def free_port(seed: int, taken: int = 0) -> int:
    """A port of ``_PORTS`` free on this host now (not ``taken``), tried from one the seed picks.

    The batch step runs on the job's first node, where rank 0 listens; a port that
    cannot be bound here is skipped (another job's rendezvous, a service).
    """
    for offset in range(len(_PORTS)):
        port = _PORTS[(seed + offset) % len(_PORTS)]
        if port == taken:
            continue
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


def slurm_ranks(count: int, *, mpi: bool = False, slots: int = 1) -> Ranks:
    """The ranks of the Slurm job this process runs in (call it on the batch node)."""
    hosts = tuple(_scontrol("show", "hostnames", os.environ["SLURM_JOB_NODELIST"]).split())
    main_addr = hosts[0]
    for word in _scontrol("show", "node", "-o", hosts[0]).split():
        if word.startswith("NodeAddr="):
            main_addr = word.removeprefix("NodeAddr=")
    job_id = int(os.environ.get("SLURM_JOB_ID", "0"))
    port = free_port(job_id)
    return Ranks(
        count=count,
        hosts=hosts,
        main_addr=main_addr,
        port=port,
        host_network=True,
        mpi=mpi,
        mpi_port=free_port(job_id + 1, taken=port) if mpi else 0,
        slots=slots,
        launcher=(
            "srun",
            f"--nodes={count}",
            f"--ntasks={count}",
            "--ntasks-per-node=1",
            "--kill-on-bad-exit=1",
            "--quiet",
        ),
    )
