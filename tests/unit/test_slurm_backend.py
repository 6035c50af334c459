"""The Slurm backend's pure parts: the batch script (golden files), squeue/sinfo, admission."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolship.compute.hpc import Phase
from toolship.compute.slurm_format import batch_script, check_partitions, parse_sinfo, parse_squeue
from toolship.config import SlurmPartition, SlurmSettings
from toolship.errors import InvalidRequest, ResourcesUnavailable
from toolship.models import Resources
from toolship.options import OptionDefaults, read_options

GOLDEN = Path(__file__).parent / "golden"
SLURM = SlurmSettings(
    worker_command=["/opt/toolship/bin/toolship", "worker"], time_margin_seconds=300
)
DEBUG = [SlurmPartition(name="debug", nodes=2, cpus_per_node=2, memory_gb_per_node=3.9)]


def options(**res: object) -> object:
    return read_options(
        Resources.model_validate(res), OptionDefaults(runtime="podman", cpus=1, memory_gb=0.0)
    )


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TOOLSHIP_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; TOOLSHIP_UPDATE_GOLDEN=1 rewrites it"


def script(opts: object, slurm: SlurmSettings = SLURM) -> str:
    return batch_script(
        opts,  # type: ignore[arg-type]
        slurm,
        task_id="1m80abc",
        attempt=1,
        task_dir=Path("/shared/toolship/tasks/1m80abc"),
        server_url="http://head:8000",
    )


def test_a_plain_task_asks_for_one_core_on_one_node() -> None:
    golden("slurm_plain.sh", script(options()))


def test_resources_map_to_sbatch_options() -> None:
    opts = options(
        cpu_cores=4, ram_gb=7.5,
        backend_parameters={
            "timeout": "2h", "gpus": "2", "nodes": "3", "partition": "gpu",
            "account": "lab42", "qos": "long", "constraint": "a100&ib",
        },
    )  # fmt: skip
    slurm = SLURM.model_copy(update={"prologue": ["module load podman"]})
    text = script(opts, slurm)
    golden("slurm_full.sh", text)
    for line in (
        "#SBATCH --cpus-per-task=4", "#SBATCH --mem=7680M", "#SBATCH --time=0-02:05:00",
        "#SBATCH --gres=gpu:2", "#SBATCH --nodes=3", "#SBATCH --partition=gpu",
        "#SBATCH --account=lab42", "#SBATCH --qos=long", "#SBATCH --constraint=a100&ib",
    ):  # fmt: skip
        assert line in text.splitlines()


def test_the_token_never_appears_on_a_command_line() -> None:
    text = script(options())
    assert "TOOLSHIP_WORKER_TOKEN_FILE=/shared/toolship/tasks/1m80abc/worker.token" in text
    exec_line = text.splitlines()[-1]
    assert exec_line.startswith("exec ") and "token" not in exec_line


def test_the_default_partition_is_used_unless_the_task_names_one() -> None:
    slurm = SLURM.model_copy(update={"default_partition": "short"})
    assert "#SBATCH --partition=short" in script(options(), slurm)
    named = options(backend_parameters={"partition": "long"})
    assert "#SBATCH --partition=long" in script(named, slurm)


def test_slurm_values_are_checked() -> None:
    with pytest.raises(InvalidRequest, match="characters Slurm"):
        options(backend_parameters={"partition": "debug\n#SBATCH --uid=0"})


def test_squeue_answer_is_parsed_for_all_jobs_at_once() -> None:
    text = (
        "12|RUNNING|None|node1\n13|PENDING|Resources|\n14|NODE_FAIL|NodeDown|node2\n"
        "15|COMPLETED|None|node1\n16|CANCELLED|None|node[1-2]\n"
    )
    jobs = parse_squeue(text)
    assert {j: s.phase for j, s in jobs.items()} == {
        "12": Phase.RUNNING, "13": Phase.WAITING, "14": Phase.LOST, "15": Phase.ENDED,
        "16": Phase.ENDED,
    }  # fmt: skip
    assert jobs["14"].nodes == "node2" and jobs["14"].reason == "NodeDown"
    assert jobs["12"].reason == ""


def test_sinfo_answer_gives_partitions_and_gpus() -> None:
    parts = parse_sinfo("debug|2|2|3744|(null)\ngpu|4|64|512000|gpu:a100:4(S:0-1)\n")
    assert parts[0] == SlurmPartition(
        name="debug", nodes=2, cpus_per_node=2, memory_gb_per_node=3744 / 1024, gpus_per_node=0
    )
    assert parts[1].gpus_per_node == 4


def test_gpus_on_a_cluster_without_gpus_are_refused() -> None:
    with pytest.raises(ResourcesUnavailable, match="no partition offers GPUs"):
        check_partitions(options(backend_parameters={"gpus": "1"}), DEBUG, "")  # type: ignore[arg-type]


def test_what_no_partition_holds_is_refused_saying_what_there_is() -> None:
    with pytest.raises(ResourcesUnavailable, match=r"3 node\(s\).*debug: 2 nodes of 2 cores"):
        check_partitions(options(backend_parameters={"nodes": "3"}), DEBUG, "")  # type: ignore[arg-type]
    with pytest.raises(ResourcesUnavailable, match="partition 'gpu' does not exist"):
        check_partitions(options(backend_parameters={"partition": "gpu"}), DEBUG, "")  # type: ignore[arg-type]
    check_partitions(options(cpu_cores=2, ram_gb=3, backend_parameters={"nodes": "2"}), DEBUG, "")  # type: ignore[arg-type]


def test_the_owners_slurm_account_is_given_as_account() -> None:
    text = batch_script(
        options(),  # type: ignore[arg-type]
        SLURM,
        task_id="1m80abc",
        attempt=1,
        task_dir=Path("/shared/toolship/tasks/1m80abc"),
        server_url="http://head:8000",
        account="proj-bob",
    )
    assert "#SBATCH --account=proj-bob" in text.splitlines()
    assert "--account" not in script(options())  # no map entry: Slurm's default account
