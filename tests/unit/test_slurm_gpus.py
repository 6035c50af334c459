"""On a Slurm node: the devices a job's executors get are the ones Slurm allotted to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolship.runtime.gpus import Gpu
from toolship.worker import slurm_gpus
from toolship.worker.slurm_gpus import allotted_gpus, node_gpus

FOUR = [Gpu(i, f"GPU-{i}{i}{i}", "H200", 143771) for i in range(4)]


@pytest.mark.parametrize("containers", [True, False])
def test_the_job_gets_the_devices_slurm_allotted_with_what_discovery_knows(
    containers: bool,
) -> None:
    env = {"SLURM_JOB_GPUS": "1,3", "CUDA_VISIBLE_DEVICES": "1,3"}
    assert allotted_gpus(env, FOUR, containers=containers) == (FOUR[1], FOUR[3])


def test_devices_discovery_does_not_know_are_bare_indexes() -> None:
    env = {"SLURM_JOB_GPUS": "0,1", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert allotted_gpus(env, [], containers=True) == (Gpu(0), Gpu(1))


def test_without_slurm_job_gpus_cuda_visible_devices_names_them() -> None:
    assert allotted_gpus({"CUDA_VISIBLE_DEVICES": "2"}, FOUR, containers=True) == (FOUR[2],)


def test_constrained_devices_containers_get_host_nodes_processes_the_jobs_numbers() -> None:
    # ConstrainDevices: the job's cgroup shows only its two devices, which CUDA (and NVML,
    # discovering inside the job) numbers 0 and 1; Slurm renumbers CUDA_VISIBLE_DEVICES.
    env = {"SLURM_JOB_GPUS": "2,3", "CUDA_VISIBLE_DEVICES": "0,1"}
    inside = [Gpu(0, "GPU-222", "H200", 1), Gpu(1, "GPU-333", "H200", 1)]
    as_containers = allotted_gpus(env, inside, containers=True)
    assert as_containers == (Gpu(2, "GPU-222", "H200", 1), Gpu(3, "GPU-333", "H200", 1))
    as_processes = allotted_gpus(env, inside, containers=False)
    assert as_processes == tuple(inside)
    # Unknown to discovery: containers get the host's device nodes, processes CUDA's indexes.
    assert allotted_gpus(env, [], containers=True) == (Gpu(2), Gpu(3))
    assert allotted_gpus(env, [], containers=False) == (Gpu(0), Gpu(1))


@pytest.mark.parametrize("cuda", [None, "", "NoDevFiles"])
def test_a_job_without_gpus_sees_none_on_a_gpu_node_and_is_left_alone_elsewhere(
    cuda: str | None,
) -> None:
    env = {} if cuda is None else {"CUDA_VISIBLE_DEVICES": cuda}
    assert allotted_gpus(env, FOUR, containers=True) == ()
    assert allotted_gpus(env, [], containers=True) is None


def test_a_node_without_a_driver_or_an_allotment_skips_discovery(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(slurm_gpus, "DRIVER_GPUS", tmp_path / "absent")

    def discover() -> tuple[list[Gpu], str]:
        raise AssertionError("discovery ran")

    monkeypatch.setattr(slurm_gpus, "discover", discover)
    assert node_gpus({}) == []


def test_gpus_the_driver_lists_but_discovery_cannot_see_still_count(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A job without GPUs under ConstrainDevices: NVML sees nothing, the driver lists two.
    for bus in ("0000:17:00.0", "0000:65:00.0"):
        (tmp_path / bus).mkdir()
    monkeypatch.setattr(slurm_gpus, "DRIVER_GPUS", tmp_path)
    monkeypatch.setattr(slurm_gpus, "discover", lambda: ([], "NVML"))
    found = node_gpus({})
    assert found == [Gpu(0), Gpu(1)]
    assert allotted_gpus({}, found, containers=True) == ()


def test_an_allotted_job_discovers_even_without_a_driver_listing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(slurm_gpus, "DRIVER_GPUS", tmp_path / "absent")
    monkeypatch.setattr(slurm_gpus, "discover", lambda: (FOUR, "nvidia-smi"))
    assert node_gpus({"SLURM_JOB_GPUS": "0"}) == FOUR
