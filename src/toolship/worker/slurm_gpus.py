"""The GPUs Slurm allotted to the job this worker runs in: the ones its executors get.

Slurm tells the batch step which devices are the job's in two variables (gres/gpu with
``File=`` in gres.conf): ``SLURM_JOB_GPUS`` names them by the host's index (the device
node ``/dev/nvidia{index}``), ``CUDA_VISIBLE_DEVICES`` by the index CUDA sees inside
the job.  The two agree unless the cluster constrains devices (``ConstrainDevices=yes``
in cgroup.conf): then the job's cgroup shows only its own devices, which CUDA numbers
0…n-1, and Slurm renumbers ``CUDA_VISIBLE_DEVICES`` to match.

So a device's index depends on who addresses it:

- containers (podman, docker) are started outside the job's cgroup and get the device
  nodes of the host's indexes (``SLURM_JOB_GPUS``); inside, CUDA numbers what it was
  given 0…n-1 (:func:`toolship.runtime.gpus.visible_env` with ``renumbered``);
- the ``process`` runtime runs inside the job's cgroup and keeps the numbering Slurm
  gave CUDA there (``CUDA_VISIBLE_DEVICES``).

A device's UUID, model and memory come from discovery on the node (NVML, which runs
inside the job and numbers devices as CUDA does there); a device discovery does not
know (no NVML, no ``nvidia-smi``, or a test cluster's fake devices) is its bare index.

A job that asked for no GPU is told nothing by Slurm.  On a node with GPUs its
executors get ``()``: they see none (a container image's
``NVIDIA_VISIBLE_DEVICES=all`` would otherwise hand it every device through the NVIDIA
container hook, which Slurm's cgroup does not govern).  On a node without GPUs: None,
the environment is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from toolship.runtime.gpus import Gpu, discover

__all__ = ["allotted_gpus", "node_gpus"]

# The NVIDIA driver lists every GPU of the host here; a job's device cgroup hides
# devices from NVML, not from this directory.
DRIVER_GPUS = Path("/proc/driver/nvidia/gpus")


def _indexes(value: str | None) -> list[int] | None:
    """``"0,2"`` -> [0, 2]; None when unset or not a list of indexes (``NoDevFiles``)."""
    if not value:
        return None
    parts = [p.strip() for p in value.split(",")]
    if not all(p.isdigit() for p in parts):
        return None
    return [int(p) for p in parts]


def allotted_gpus(
    environ: Mapping[str, str], discovered: Sequence[Gpu], *, containers: bool
) -> tuple[Gpu, ...] | None:
    """The devices of this Slurm job, as its executors address them (see the module doc).

    ``discovered``: the node's devices as discovery inside the job numbers them (or
    bare devices standing for GPUs the driver lists); ``containers``: the executors
    are containers (host indexes) rather than processes in the job (CUDA's indexes).
    """
    cuda = _indexes(environ.get("CUDA_VISIBLE_DEVICES"))
    host = _indexes(environ.get("SLURM_JOB_GPUS")) or cuda
    if not host:
        return () if discovered else None
    # Slurm writes both lists in the same order; CUDA's is the host's unless renumbered.
    inside = cuda if cuda is not None and len(cuda) == len(host) else host
    known = {g.index: g for g in discovered}
    found = []
    for host_index, job_index in zip(host, inside, strict=True):
        index = host_index if containers else job_index
        d = known.get(job_index)
        found.append(Gpu(index, d.uuid, d.name, d.memory_mib) if d else Gpu(index))
    return tuple(found)


def node_gpus(environ: Mapping[str, str] = os.environ) -> list[Gpu]:
    """This node's devices, for :func:`allotted_gpus`; cheap on a node without GPUs.

    Discovery (NVML, ``nvidia-smi``) runs only where the job was given GPUs or the
    driver lists some.  GPUs the driver lists but discovery cannot see (a job without
    GPUs, its device cgroup hiding them) count as bare devices: the node has GPUs.
    """
    try:
        listed = sorted(DRIVER_GPUS.iterdir())
    except OSError:
        listed = []
    if not listed and not ("SLURM_JOB_GPUS" in environ or "CUDA_VISIBLE_DEVICES" in environ):
        return []
    found, _how = discover()
    return found or [Gpu(i) for i in range(len(listed))]
