"""GPUs: which devices this host has, how a task's executors see only theirs, what they used.

A device is named the way CUDA names it: by its UUID (``GPU-…``) when known,
else by the host's index.  An executor is given its devices two ways at once:
the environment (``CUDA_VISIBLE_DEVICES``, ``NVIDIA_VISIBLE_DEVICES``), which is
all the ``process`` runtime has, and, for containers, the devices themselves
(CDI names where the NVIDIA Container Toolkit wrote a CDI spec, else the
``/dev/nvidia*`` nodes); a container given no device cannot open one.

Discovery and sampling use NVML (``nvidia-ml-py``), falling back to
``nvidia-smi`` for discovery; on a host with neither, no devices are found.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Gpu",
    "GpuSampler",
    "GpuUsage",
    "container_devices",
    "discover",
    "gpu_metadata",
    "visible_env",
]

log = logging.getLogger(__name__)

# Where the NVIDIA Container Toolkit writes CDI specs (`nvidia-ctk cdi generate`).
CDI_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
CDI_KIND = "nvidia.com/gpu"
# Device nodes every CUDA program opens besides its GPU's own /dev/nvidiaN.
CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int  # the host's index (nvidia-smi's; its node is /dev/nvidia{index})
    uuid: str = ""  # "GPU-…"; "" for a device listed without one
    name: str = ""
    memory_mib: int = 0  # total memory; 0: unknown

    @property
    def id(self) -> str:
        """What CUDA_VISIBLE_DEVICES names it by: its UUID, else its index."""
        return self.uuid or str(self.index)

    def describe(self) -> str:
        memory = f", {self.memory_mib} MiB" if self.memory_mib else ""
        return f"{self.index}: {self.name or 'GPU'} ({self.uuid or 'no UUID'}{memory})"


# --- discovery -----------------------------------------------------------------------


@contextlib.contextmanager
def _nvml() -> Iterator[Any]:
    """NVML initialised, or None when the library or its driver is missing."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # ImportError, NVMLError_LibraryNotFound, _DriverNotLoaded, …
        yield None
        return
    try:
        yield pynvml
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _by_nvml() -> list[Gpu] | None:
    with _nvml() as nvml:
        if nvml is None:
            return None
        found = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            found.append(
                Gpu(
                    index=i,
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    memory_mib=nvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20,
                )
            )
        return found


def _by_nvidia_smi() -> list[Gpu] | None:
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    query = "--query-gpu=index,uuid,name,memory.total"
    try:
        out = subprocess.run(
            [binary, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = []
    for row in csv.reader(out.splitlines(), skipinitialspace=True):
        if len(row) == 4 and row[0].isdigit():
            memory = int(row[3]) if row[3].isdigit() else 0
            found.append(Gpu(int(row[0]), row[1], row[2], memory))
    return found


def discover() -> tuple[list[Gpu], str]:
    """This host's GPUs and how they were found ("NVML", "nvidia-smi" or "none")."""
    found = _by_nvml()
    if found is not None:
        return found, "NVML"
    found = _by_nvidia_smi()
    if found is not None:
        return found, "nvidia-smi"
    return [], "none"


# --- what an executor is given ---------------------------------------------------------


def visible_env(gpus: Sequence[Gpu] | None, *, renumbered: bool = False) -> dict[str, str]:
    """The variables that tell CUDA (and the NVIDIA container runtime) which devices to use.

    ``None``: this server knows no GPUs, the environment is left alone.  No devices:
    the executor sees none.  ``renumbered``: a container given only these device
    nodes numbers them 0…n-1 (UUIDs need no renumbering).
    """
    if gpus is None:
        return {}
    if not gpus:
        return {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": "void", "TOOLSHIP_GPUS": ""}
    ids = [g.id for g in gpus]
    if renumbered and not all(g.uuid for g in gpus):
        ids = [str(i) for i in range(len(gpus))]
    named = ",".join(ids)
    return {
        "CUDA_VISIBLE_DEVICES": named,
        "NVIDIA_VISIBLE_DEVICES": named,
        "TOOLSHIP_GPUS": ",".join(g.id for g in gpus),  # the host's names, for the record
    }


def _cdi_names() -> set[str]:
    """The nvidia.com/gpu device names the host's CDI specs declare."""
    names: set[str] = set()
    for folder in CDI_DIRS:
        try:
            specs = [p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json")]
        except OSError:
            continue
        for spec in specs:
            with contextlib.suppress(OSError, UnicodeDecodeError, ValueError):
                names.update(_declared(spec.read_text(), json_=spec.suffix == ".json"))
    return names


def _declared(text: str, *, json_: bool) -> set[str]:
    """Device names of a CDI spec of kind nvidia.com/gpu.

    YAML is read line by line (a ``name:`` key; no YAML parser needed for that).
    """
    if json_:
        spec = json.loads(text)
        if not isinstance(spec, dict) or spec.get("kind") != CDI_KIND:
            return set()
        devices = spec.get("devices")
        devices = devices if isinstance(devices, list) else []
        return {str(d["name"]) for d in devices if isinstance(d, dict) and "name" in d}
    if CDI_KIND not in text:
        return set()
    names = set()
    for line in text.splitlines():
        key, _, value = line.strip().lstrip("-").strip().partition(":")
        if key.strip("\"' ") == "name":
            names.add(value.strip().strip(",\"' "))
    return names


def container_devices(gpus: Sequence[Gpu]) -> list[str]:
    """The container runtime's arguments that give a container these devices and no other."""
    if not gpus:
        return []
    cdi = _cdi_names()
    if cdi and all(g.uuid in cdi or str(g.index) in cdi for g in gpus):
        return [
            arg
            for g in gpus
            for arg in ("--device", f"{CDI_KIND}={g.uuid if g.uuid in cdi else g.index}")
        ]
    nodes = [f"/dev/nvidia{g.index}" for g in gpus if Path(f"/dev/nvidia{g.index}").exists()]
    if not nodes:
        return []  # listed devices this host has no node for (a test inventory)
    nodes += [n for n in CONTROL_NODES if Path(n).exists()]
    return [arg for node in nodes for arg in ("--device", node)]


# --- accounting ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuUsage:
    busy_seconds: float  # sum over the devices of utilisation x time
    peak_memory_bytes: int  # the most memory the devices held at once, beyond their idle use
    samples: int


class GpuSampler:
    """Samples the granted devices' utilisation and memory (NVML) in a thread.

    The devices are the task's own (never shared unless the operator allows it), so
    what they do between ``start`` and ``stop`` is the task's.  Memory is counted
    beyond what each device held at the start (the driver's own reservation).
    """

    def __init__(self, gpus: Sequence[Gpu], interval: float = 1.0) -> None:
        self.gpus = list(gpus)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = 0.0
        self._peak = 0
        self._samples = 0

    def start(self) -> bool:
        """Start sampling; False when NVML is not available (nothing is measured)."""
        ready = threading.Event()
        ok: list[bool] = []

        def run() -> None:
            with _nvml() as nvml:
                ok.append(nvml is not None)
                ready.set()
                if nvml is not None:
                    self._sample(nvml)

        self._thread = threading.Thread(target=run, name="gpu-sampler", daemon=True)
        self._thread.start()
        ready.wait()
        return ok[0]

    def _sample(self, nvml: Any) -> None:
        try:
            handles = [
                nvml.nvmlDeviceGetHandleByUUID(g.uuid)
                if g.uuid
                else nvml.nvmlDeviceGetHandleByIndex(g.index)
                for g in self.gpus
            ]
            base = [nvml.nvmlDeviceGetMemoryInfo(h).used for h in handles]
        except Exception as exc:  # a listed device NVML does not know
            log.warning("GPU sampling off: %s", exc)
            return
        last = time.monotonic()
        while True:
            stopping = self._stop.wait(self.interval)
            now = time.monotonic()
            try:
                busy = sum(nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in handles) / 100
                held = sum(
                    max(0, nvml.nvmlDeviceGetMemoryInfo(h).used - b)
                    for h, b in zip(handles, base, strict=True)
                )
            except Exception as exc:
                log.warning("GPU sampling stopped: %s", exc)
                return
            self._busy += busy * (now - last)
            self._peak = max(self._peak, held)
            self._samples += 1
            last = now
            if stopping:
                return

    def stop(self) -> GpuUsage:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return GpuUsage(round(self._busy, 3), self._peak, self._samples)


def gpu_metadata(gpus: Sequence[Gpu], run_seconds: float, usage: GpuUsage | None) -> dict[str, str]:
    """An attempt's GPU record (TES ``logs[].metadata``)."""
    meta = {
        "toolship.gpus": ",".join(g.id for g in gpus),
        "toolship.gpu_seconds": f"{len(gpus) * run_seconds:.3f}",
    }
    if usage is not None and usage.samples:
        meta["toolship.gpu_busy_seconds"] = f"{usage.busy_seconds:.3f}"
        meta["toolship.gpu_memory_peak_bytes"] = str(usage.peak_memory_bytes)
    return meta
