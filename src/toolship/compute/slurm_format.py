"""What toolship writes to Slurm and reads back: batch scripts, ``squeue``/``sinfo``.

Pure: text in, text or values out (golden-file and unit tested).  The backend that
runs the commands is :mod:`toolship.compute.slurm`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from toolship.compute.hpc import JobStatus, Phase, quote, render_script
from toolship.config import SlurmPartition, SlurmSettings
from toolship.errors import ResourcesUnavailable
from toolship.options import TaskOptions

__all__ = [
    "COMMENT_PREFIX",
    "JOB_ID",
    "SINFO",
    "SQUEUE",
    "STATES",
    "TRANSIENT",
    "UNFINISHED",
    "batch_script",
    "check_partitions",
    "directives",
    "parse_sinfo",
    "parse_squeue",
    "parse_unfinished",
]

JOB_ID = re.compile(r"^\s*(\d+)", re.MULTILINE)
TRANSIENT = (
    "socket timed out",
    "resource temporarily unavailable",
    "temporarily unable",
    "try again",
    "connection refused",
)
_WAITING = "PENDING CONFIGURING REQUEUED REQUEUE_HOLD REQUEUE_FED RESIZING"
_RUNNING = "RUNNING COMPLETING SUSPENDED STAGE_OUT SIGNALING STOPPED"
_ENDED = "COMPLETED FAILED CANCELLED TIMEOUT DEADLINE OUT_OF_MEMORY PREEMPTED REVOKED SPECIAL_EXIT"
_LOST = "NODE_FAIL BOOT_FAIL"
# Slurm's job states (squeue %T) -> what they mean for the attempt.
STATES: dict[str, Phase] = {
    **dict.fromkeys(_WAITING.split(), Phase.WAITING),
    **dict.fromkeys(_RUNNING.split(), Phase.RUNNING),
    **dict.fromkeys(_ENDED.split(), Phase.ENDED),
    **dict.fromkeys(_LOST.split(), Phase.LOST),
}
SQUEUE = ["squeue", "--me", "--noheader", "--states=all", "--format=%i|%T|%r|%N"]
SINFO = ["sinfo", "--noheader", "--format=%R|%D|%c|%m|%G"]
# Our jobs that may still run an attempt, with the attempt each one is (its --comment).
UNFINISHED = [
    "squeue", "--me", "--noheader", "--states=PD,CF,R,CG,S,RQ", "--format=%i|%k",
]  # fmt: skip
COMMENT_PREFIX = "toolship:"


def _duration(seconds: float) -> str:
    total = math.ceil(seconds)
    days, rest = divmod(total, 86400)
    return f"{days}-{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def directives(
    options: TaskOptions,
    slurm: SlurmSettings,
    *,
    task_id: str,
    attempt: int,
    output: Path,
    account: str | None = None,
) -> list[tuple[str, str]]:
    """The sbatch options of one attempt, in a fixed order (golden-file tested).

    ``account``: the owner's Slurm account (access.slurm_accounts), before the task's own.
    """
    found: list[tuple[str, str]] = [
        ("job-name", f"toolship-{task_id}"),
        # Which attempt the job is: a restarted server finds a job it submitted but did
        # not get to record, instead of submitting the attempt twice.
        ("comment", f"{COMMENT_PREFIX}{task_id}:{attempt}"),
        ("output", str(output)),
        ("open-mode", "append"),
    ]
    if options.nodes > 1:  # one node and one task are Slurm's defaults
        found += [("nodes", str(options.nodes)), ("ntasks-per-node", "1")]
    found.append(("cpus-per-task", str(options.cpus)))
    if options.memory_limited:
        found.append(("mem", f"{max(1, math.ceil(options.memory_gb * 1024))}M"))
    if options.timeout:
        found.append(("time", _duration(options.timeout + slurm.time_margin_seconds)))
    if options.gpus:
        found.append(("gres", f"gpu:{options.gpus}"))
    partition = options.parameters.get("partition") or slurm.default_partition
    if partition:
        found.append(("partition", partition))
    if account is not None:
        found.append(("account", account))
    for key in ("account", "qos", "constraint"):
        if key in options.parameters and not (key == "account" and account is not None):
            found.append((key, options.parameters[key]))
    return found


def batch_script(
    options: TaskOptions,
    slurm: SlurmSettings,
    *,
    task_id: str,
    attempt: int,
    task_dir: Path,
    server_url: str,
    account: str | None = None,
) -> str:
    token_file = task_dir / "worker.token"
    command = [
        *slurm.worker_command, "--server", server_url, "--task", task_id,
        "--attempt", str(attempt),
    ]  # fmt: skip
    return render_script(
        directive="#SBATCH",
        options=directives(
            options,
            slurm,
            task_id=task_id,
            attempt=attempt,
            output=task_dir / f"slurm-{attempt}.out",
            account=account,
        ),
        comment=[
            f"toolship task {task_id}, attempt {attempt}.",
            "The worker stages the inputs in, runs each executor (on every node through",
            "srun when --nodes > 1), stages the outputs out and reports to the server.",
            "Its per-task token is read from a file, never given on a command line.",
        ],
        body=[
            *slurm.prologue,
            f"export TOOLSHIP_WORKER_TOKEN_FILE={quote([str(token_file)])}",
            f"exec {quote(command)}",
        ],
    )


def parse_squeue(text: str) -> dict[str, JobStatus]:
    found: dict[str, JobStatus] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4 or not parts[0]:
            continue
        job_id, state, reason, nodes = parts
        state = state.split()[0].rstrip("+")  # "CANCELLED by 0" in some versions
        phase = STATES.get(state, Phase.RUNNING)
        reason = "" if reason in ("None", "(null)") else reason
        found[job_id] = JobStatus(job_id, state, phase, reason, nodes)
    return found


def parse_unfinished(text: str) -> dict[tuple[str, int], str]:
    """(task id, attempt) -> job id of the toolship jobs ``UNFINISHED`` lists."""
    found: dict[tuple[str, int], str] = {}
    for line in text.splitlines():
        job_id, _, comment = line.strip().partition("|")
        if not job_id or not comment.startswith(COMMENT_PREFIX):
            continue
        task_id, _, attempt = comment.removeprefix(COMMENT_PREFIX).rpartition(":")
        if task_id and attempt.isdigit():
            found[(task_id, int(attempt))] = job_id
    return found


_GPUS = re.compile(r"gpu(?::[^:,(]+)?:(\d+)")


def parse_sinfo(text: str) -> list[SlurmPartition]:
    """Partitions as ``sinfo`` reports them (the largest node of each)."""
    found: dict[str, SlurmPartition] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5:
            continue
        name, count, cpus, memory, gres = parts
        gpus = sum(int(m) for m in _GPUS.findall(gres))
        new = SlurmPartition(
            name=name,
            nodes=int(count),
            cpus_per_node=int(cpus.rstrip("+")),
            memory_gb_per_node=max(int(memory.rstrip("+")), 1) / 1024,
            gpus_per_node=gpus,
        )
        old = found.get(name)
        if old is not None:
            new = SlurmPartition(
                name=name,
                nodes=old.nodes + new.nodes,
                cpus_per_node=max(old.cpus_per_node, new.cpus_per_node),
                memory_gb_per_node=max(old.memory_gb_per_node, new.memory_gb_per_node),
                gpus_per_node=max(old.gpus_per_node, new.gpus_per_node),
            )
        found[name] = new
    return list(found.values())


def check_partitions(options: TaskOptions, partitions: list[SlurmPartition], default: str) -> None:
    """Refuse what no partition of the cluster can ever hold, saying why."""
    if not partitions:
        raise ResourcesUnavailable("the Slurm cluster has no partitions (sinfo lists none)")
    named = options.parameters.get("partition") or default
    names = ", ".join(p.name for p in partitions)
    candidates = partitions
    if named:
        candidates = [p for p in partitions if p.name == named]
        if not candidates:
            raise ResourcesUnavailable(
                f"partition {named!r} does not exist on this Slurm cluster; use one of: {names}"
            )
    if options.gpus and not any(p.gpus_per_node for p in candidates):
        where = f"partition {named!r}" if named else "this Slurm cluster"
        with_gpus = [p.name for p in partitions if p.gpus_per_node]
        hint = (
            f"partitions with GPUs: {', '.join(with_gpus)}"
            if with_gpus
            else "ask without gpus, or add GPU partitions to slurm.partitions"
        )
        raise ResourcesUnavailable(
            f"{options.gpus} GPUs asked for, but no partition offers GPUs on {where} ({hint})"
        )
    wants = (
        f"{options.nodes} node(s) with {options.cpus} CPU cores, "
        f"{options.memory_gb:g} GiB of memory and {options.gpus} GPUs each"
    )
    for p in candidates:
        if (
            options.nodes <= p.nodes
            and options.cpus <= p.cpus_per_node
            and options.memory_gb <= p.memory_gb_per_node + 1e-9
            and options.gpus <= p.gpus_per_node
        ):
            return
    offers = "; ".join(
        f"{p.name}: {p.nodes} nodes of {p.cpus_per_node} cores, "
        f"{p.memory_gb_per_node:.1f} GiB, {p.gpus_per_node} GPUs"
        for p in candidates
    )
    raise ResourcesUnavailable(
        f"no partition can hold {wants} ({offers}); ask for less (--cpu/--memory, nodes)"
    )
