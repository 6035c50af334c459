"""GPUs as devices: the inventory, which task holds which device, what executors are told."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from toolship.compute.base import Capacity, Request
from toolship.compute.devices import GpuPool
from toolship.compute.local import LocalBackend, gpu_inventory
from toolship.config import LocalSettings, PriceSettings, Settings
from toolship.engine.accounting import member_usage, summarize
from toolship.engine.core import EngineCore
from toolship.engine.events import AttemptExited, Dispatch, Start, TaskCreated
from toolship.engine.scheduler import pick
from toolship.models import Executor, Resources, Task, TaskLog
from toolship.options import OptionDefaults, read_options
from toolship.records import Job, RuntimeRecord
from toolship.runtime import gpus as gpus_module
from toolship.runtime.base import ExecSpec
from toolship.runtime.container import ContainerRuntime
from toolship.runtime.gpus import Gpu, container_devices, gpu_metadata, visible_env
from toolship.runtime.process import ProcessRuntime
from toolship.states import TaskState
from toolship.storage import StorageRegistry

TWO = [Gpu(0, "GPU-aaaa", "Fake", 16384), Gpu(1, "GPU-bbbb", "Fake", 16384)]


def gpu_task(task_id: str, gpus: int = 1) -> Request:
    return Request(task_id, cpus=1, memory_gb=0, gpus=gpus)


def test_one_gpu_tasks_get_different_devices_and_a_third_waits() -> None:
    pool = GpuPool(TWO)
    assert pool.take("a", 1) == (TWO[0],)
    assert pool.take("b", 1) == (TWO[1],)
    assert not pool.fits(1)
    pool.give("a")
    assert pool.fits(1) and not pool.fits(2)
    assert pool.take("c", 1) == (TWO[0],), "the third gets the freed device"
    pool.give("b")
    pool.give("c")
    assert pool.take("both", 2) == tuple(TWO)


def test_shared_devices_spread_tasks_and_never_give_one_task_a_device_twice() -> None:
    pool = GpuPool(TWO, share=2)
    assert [pool.take(t, 1)[0].index for t in "abc"] == [0, 1, 0]
    assert pool.fits(1) and not pool.fits(2), "one device has room, so a 2-GPU task waits"
    pool.give("a")
    assert pool.take("wide", 2) == tuple(TWO)


def test_a_resumed_task_gets_back_exactly_its_devices() -> None:
    pool = GpuPool(TWO)
    assert pool.reserve("old", [1, 7]) == [7], "a device gone from the inventory is reported"
    assert pool.take("old", 1) == (TWO[1],)
    assert pool.take("new", 1) == (TWO[0],)


def test_the_scheduler_starts_what_the_devices_allow() -> None:
    free = Capacity(8, 64, 2, GpuPool(TWO))
    chosen = pick([gpu_task("a"), gpu_task("b"), gpu_task("c"), gpu_task("d", 0)], free)
    assert [r.task_id for r in chosen] == ["a", "b", "d"]
    assert free.devices is not None and free.devices.fits(2), "planning took nothing"


def test_the_engine_core_hands_out_devices_and_takes_them_back() -> None:
    pool = GpuPool(TWO)
    core = EngineCore(Capacity(8, 64, 2, pool))
    for name in ("a", "b", "c"):
        core.handle(TaskCreated(gpu_task(name)))
    started = [i.request.task_id for i in core.handle(Dispatch()) if isinstance(i, Start)]
    assert started == ["a", "b"]
    assert {pool.held("a")[0].index, pool.held("b")[0].index} == {0, 1}
    freed = pool.held("a")
    core.handle(AttemptExited("a", TaskState.COMPLETE))
    assert [i.request.task_id for i in core.handle(Dispatch()) if isinstance(i, Start)] == ["c"]
    assert pool.held("c") == freed


def test_executors_see_their_devices_by_uuid_or_none_at_all() -> None:
    assert visible_env(None) == {}, "a server without GPUs leaves the environment alone"
    assert visible_env(()) == {
        "CUDA_VISIBLE_DEVICES": "",
        "NVIDIA_VISIBLE_DEVICES": "void",
        "TOOLSHIP_GPUS": "",
    }
    assert visible_env(TWO)["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa,GPU-bbbb"
    bare = [Gpu(3), Gpu(5)]
    assert visible_env(bare)["CUDA_VISIBLE_DEVICES"] == "3,5"
    renumbered = visible_env(bare, renumbered=True)
    assert renumbered["CUDA_VISIBLE_DEVICES"] == "0,1", "a container sees only its own nodes"
    assert renumbered["TOOLSHIP_GPUS"] == "3,5"


def spec(tmp_path: Path, gpus: tuple[Gpu, ...] | None, env: dict[str, str]) -> ExecSpec:
    return ExecSpec(
        name="t", task_id="t", image="img", command=("true",), workdir=None, env=env,
        mounts=(), root=tmp_path, gpus=gpus,
    )  # fmt: skip


def test_a_task_cannot_choose_another_device_through_its_environment(tmp_path: Path) -> None:
    mine = spec(tmp_path, (TWO[1],), {"CUDA_VISIBLE_DEVICES": "GPU-aaaa", "X": "1"})
    env = ProcessRuntime().environment(mine)
    assert env is not None
    assert (env["CUDA_VISIBLE_DEVICES"], env["X"]) == ("GPU-bbbb", "1")
    argv = ContainerRuntime("podman", rootless=False).command(mine)
    assert "CUDA_VISIBLE_DEVICES=GPU-bbbb" in argv and "CUDA_VISIBLE_DEVICES=GPU-aaaa" not in argv
    none = ProcessRuntime().environment(spec(tmp_path, (), {"CUDA_VISIBLE_DEVICES": "0"}))
    assert none is not None and none["CUDA_VISIBLE_DEVICES"] == ""


def test_containers_get_cdi_devices_when_a_spec_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    monkeypatch.setattr(gpus_module, "CDI_DIRS", (cdi,))
    assert container_devices(TWO[:1]) == [], "no spec, no node: a listed test device"
    (cdi / "nvidia.yaml").write_text(
        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n"
        "- name: '0'\n  containerEdits: {}\n- name: GPU-aaaa\n  containerEdits: {}\n"
    )
    assert container_devices(TWO[:1]) == ["--device", "nvidia.com/gpu=GPU-aaaa"]
    assert container_devices([Gpu(0)]) == ["--device", "nvidia.com/gpu=0"]
    assert container_devices(TWO[1:]) == [], "a device the spec does not name"
    (cdi / "nvidia.json").write_text(
        json.dumps({"kind": "nvidia.com/gpu", "devices": [{"name": "GPU-bbbb"}]})
    )
    assert container_devices(TWO) == [
        "--device", "nvidia.com/gpu=GPU-aaaa", "--device", "nvidia.com/gpu=GPU-bbbb",
    ]  # fmt: skip


def test_the_inventory_is_listed_found_or_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = LocalSettings(
        gpu_devices=[{"index": 0, "uuid": "GPU-aaaa"}, {"index": 1, "uuid": "GPU-bbbb"}]
    )
    gpus, notes = gpu_inventory(listed)
    assert [g.id for g in gpus] == ["GPU-aaaa", "GPU-bbbb"]
    assert notes[0].startswith("GPUs: 2 (listed in local.gpu_devices): 0: GPU (GPU-aaaa)")
    monkeypatch.setattr("toolship.compute.local.discover", lambda: (TWO, "NVML"))
    gpus, notes = gpu_inventory(LocalSettings())
    assert gpus == TWO and "found through NVML" in notes[0]
    assert gpu_inventory(LocalSettings(gpus=1))[0] == TWO[:1]
    assert gpu_inventory(LocalSettings(gpus=0)) == ([], ["GPUs: none (local.gpus = 0)"])
    gpus, notes = gpu_inventory(LocalSettings(gpus=3))
    assert [g.index for g in gpus] == [0, 1, 2]
    assert "devices 2 are counted without being found" in notes[1]
    assert "local.gpu_devices" in notes[1]


def test_a_device_listed_twice_is_refused_with_the_fix() -> None:
    with pytest.raises(ValidationError, match="index 0 is listed more than once"):
        LocalSettings(gpu_devices=[{"index": 0}, {"index": 0, "uuid": "GPU-x"}])
    with pytest.raises(ValidationError, match="uuid GPU-x is listed more than once"):
        LocalSettings(gpu_devices=[{"index": 0, "uuid": "GPU-x"}, {"index": 1, "uuid": "GPU-x"}])


def test_an_attempt_records_its_devices_and_gpu_time() -> None:
    assert gpu_metadata(TWO, 10.0, None) == {
        "toolship.gpus": "GPU-aaaa,GPU-bbbb",
        "toolship.gpu_seconds": "20.000",
    }


def test_the_report_sums_gpu_time_and_keeps_the_peak_gpu_memory() -> None:
    def attempt(gpu_seconds: str, peak: str) -> TaskLog:
        return TaskLog.model_validate({
            "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:10Z",
            "metadata": {"toolship.gpus": "GPU-aaaa", "toolship.gpu_seconds": gpu_seconds,
                         "toolship.gpu_busy_seconds": "4.0",
                         "toolship.gpu_memory_peak_bytes": peak},
        })  # fmt: skip

    prices = PriceSettings(core_hour=0, gb_hour=0, gpu_hour=36.0)
    attempts = [attempt("8.0", "1024"), attempt("9.5", "4096")]
    row = SimpleNamespace(id="t", name=None, state=TaskState.COMPLETE, cpus=1, memory_gb=0.0,
                          gpus=1, logs=attempts, spec={})  # fmt: skip
    member = member_usage(row, {}, prices)
    assert (member.gpu_seconds, member.gpu_busy_seconds) == (17.5, 8.0)
    assert member.gpu_memory_peak_bytes == 4096
    assert member.cost == pytest.approx(20 / 3600 * 36.0), "priced by the GPU-hour, as reserved"
    plain = member_usage(SimpleNamespace(**{**vars(row), "gpus": 0, "logs": []}), {}, prices)
    totals = summarize([member, plain])
    assert (totals.gpu_seconds, totals.gpu_memory_peak_bytes) == (17.5, 4096)
    assert plain.gpu_seconds is None


def test_a_restarted_server_gives_a_running_task_back_its_own_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("TOOLSHIP_")]:
        monkeypatch.delenv(key)
    listed = [
        {"index": g.index, "uuid": g.uuid, "name": g.name, "memory_mib": g.memory_mib} for g in TWO
    ]
    settings = Settings(home=tmp_path, local=LocalSettings(runtime="process", gpu_devices=listed))

    def job(task_id: str, gpus: int, recorded: list[int] | None = None) -> Job:
        resources = Resources(backend_parameters={"gpus": str(gpus)})
        task = Task(executors=[Executor(image="x", command=["true"])], resources=resources)
        options = read_options(resources, OptionDefaults.of(settings))
        return Job(task_id, task, options, runtime=RuntimeRecord(gpus=recorded))

    first = LocalBackend(settings, StorageRegistry([]))
    fresh = job("fresh", 1)
    first.free.take(first.request("fresh", fresh.options))  # the scheduler's Start
    worker = first.start(fresh, reporter=None)  # type: ignore[arg-type]
    assert worker.env.gpus == (TWO[0],)
    assert worker.rt.gpus == [0], "the attempt records its devices for a restart"

    again = LocalBackend(settings, StorageRegistry([]))  # the server restarted
    resumed = job("resumed", 1, recorded=[1])
    worker = again.start(resumed, reporter=None)  # type: ignore[arg-type]
    again.free.take(again.request("resumed", resumed.options))  # AttemptResumed
    assert worker.env.gpus == (TWO[1],)
    newcomer = job("new", 1)
    again.free.take(again.request("new", newcomer.options))
    assert again.start(newcomer, reporter=None).env.gpus == (TWO[0],)  # type: ignore[arg-type]
    plain = job("cpu-only", 0)
    assert again.start(plain, reporter=None).env.gpus == (), "it must see no device"  # type: ignore[arg-type]
