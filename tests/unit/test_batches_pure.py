"""Batch expansion, retry decisions, the throttle and the scaling maths: pure, no I/O."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from toolship.compute.base import Capacity, Request
from toolship.config import PriceSettings
from toolship.engine.accounting import member_usage, scaling, scaling_key
from toolship.engine.expand import check_graph, expand_map, expand_sweep, substitute
from toolship.engine.scheduler import Queue, Throttle, pick
from toolship.errors import InvalidRequest
from toolship.models import TaskLog
from toolship.options import parse_retry, retry_reason
from toolship.spec import grid, read_params_file
from toolship.states import TaskState

S = TaskState


def test_substitution_leaves_shell_and_awk_braces_alone() -> None:
    values = {"lr": "0.1"}
    assert substitute("train --lr {lr} ${HOME} {print $1} {other}", values) == (
        "train --lr 0.1 ${HOME} {print $1} {other}"
    )


def test_grid_is_every_combination_first_name_slowest() -> None:
    assert grid(["a=1,2", "b=x,y"]) == [
        {"a": "1", "b": "x"}, {"a": "1", "b": "y"}, {"a": "2", "b": "x"}, {"a": "2", "b": "y"},
    ]  # fmt: skip
    with pytest.raises(InvalidRequest, match="given twice"):
        grid(["a=1", "a=2"])
    with pytest.raises(InvalidRequest, match="no values"):
        grid(["a="])
    with pytest.raises(InvalidRequest, match="letters, digits"):
        grid(["a-b=1"])


def test_params_files_csv_and_jsonl(tmp_path: Path) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text("lr,width\n0.1,100\n0.2,200\n")
    assert read_params_file(csv) == [{"lr": "0.1", "width": "100"}, {"lr": "0.2", "width": "200"}]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"lr": 0.1}\n\n{"lr": 2}\n')
    assert read_params_file(jsonl) == [{"lr": "0.1"}, {"lr": "2"}]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2,3\n")
    with pytest.raises(InvalidRequest, match=r"bad\.csv:2"):
        read_params_file(bad)
    with pytest.raises(InvalidRequest, match=r"(?i)no such file"):
        read_params_file(tmp_path / "missing.csv")


def test_sweep_members_get_their_values_index_and_resources() -> None:
    template = {
        "name": "run-{cpu}",
        "executors": [{"image": "i", "command": ["tool", "{cpu}", "{x}"], "env": {"X": "{x}"}}],
        "outputs": [{"path": "/out/r.txt", "url": "s3://b/{x}/r.txt"}],
    }
    members = expand_sweep(template, [{"cpu": "2", "x": "a"}, {"cpu": "1", "x": "b"}])
    first = members[0]
    assert first["name"] == "run-2"
    assert first["executors"][0]["command"] == ["tool", "2", "a"]
    assert first["executors"][0]["env"] == {
        "X": "a", "TOOLSHIP_ARRAY_INDEX": "0", "TOOLSHIP_ARRAY_SIZE": "2",
    }  # fmt: skip
    assert first["outputs"][0]["url"] == "s3://b/a/r.txt"
    assert first["resources"] == {"cpu_cores": 2}
    assert members[1]["resources"] == {"cpu_cores": 1}
    assert template["executors"][0]["command"] == ["tool", "{cpu}", "{x}"]  # not modified
    with pytest.raises(InvalidRequest, match=r"params\[0\].cpu='many' must be a number"):
        expand_sweep(template, [{"cpu": "many"}])
    # nodes: the member's node count (a backend parameter), so a sweep measures scaling.
    spread = {"executors": [{"image": "i", "command": ["t"]}], "resources": {"cpu_cores": 1}}
    one, two = expand_sweep(spread, [{"nodes": "1"}, {"nodes": "2"}])
    assert one["resources"] == {"cpu_cores": 1, "backend_parameters": {"nodes": "1"}}
    assert two["resources"]["backend_parameters"] == {"nodes": "2"}
    with pytest.raises(InvalidRequest, match=r"params\[0\].nodes='0' must be a whole number"):
        expand_sweep(spread, [{"nodes": "0"}])


def test_map_groups_objects_and_gives_each_group_its_own_prefix() -> None:
    urls = [f"s3://b/raw/{n}.segy" for n in ("a", "b", "c")]
    template = {"executors": [{"image": "i", "command": ["idx", "{inputs}", "{item}"]}]}
    one = expand_map(template, urls, over="s3://b/raw/*.segy", chunk=1, to="s3://b/out/",
                     input_dir="/work/in", output_dir="/work/out")  # fmt: skip
    assert [m["name"] for m in one] == ["a", "b", "c"]
    assert one[0]["inputs"] == [{"path": "/work/in/a.segy", "url": urls[0], "type": "FILE"}]
    assert one[0]["outputs"] == [
        {"path": "/work/out", "url": "s3://b/out/map/a", "type": "DIRECTORY"}
    ]
    assert one[0]["executors"][0]["command"] == ["idx", "/work/in/a.segy", "a"]
    assert one[0]["volumes"] == ["/work/out"]
    two = expand_map(template, urls, over="s3://b/raw/*.segy", chunk=2, to="s3://b/out",
                     input_dir="/work/in", output_dir="/work/out")  # fmt: skip
    assert [m["name"] for m in two] == ["chunk-00000", "chunk-00001"]
    # {inputs} as a whole argument: one argument per object, as `tool {inputs}` means.
    assert two[0]["executors"][0]["command"] == [
        "idx", "/work/in/a.segy", "/work/in/b.segy", "chunk-00000"
    ]  # fmt: skip
    assert two[1]["executors"][0]["command"] == ["idx", "/work/in/c.segy", "chunk-00001"]
    # Inside a longer argument (a shell line): space-separated, for the shell to split.
    shell = {"executors": [{"image": "i", "command": ["sh", "-c", "wc -w {inputs} > o"]}]}
    (joined,) = expand_map(shell, urls[:2], over="s3://b/raw/*.segy", chunk=2, to="s3://o",
                           input_dir="/in", output_dir="/out")  # fmt: skip
    assert joined["executors"][0]["command"][2] == "wc -w /in/a.segy /in/b.segy > o"
    assert len(two[1]["inputs"]) == 1
    nested = expand_map(template, ["s3://b/raw/x/1.s", "s3://b/raw/y/1.s"],
                        over="s3://b/raw/**/*.s", chunk=1, to="s3://o",
                        input_dir="/in", output_dir="/out")  # fmt: skip
    assert [m["inputs"][0]["path"] for m in nested] == ["/in/x/1.s", "/in/y/1.s"]
    assert [m["name"] for m in nested] == ["x-1", "y-1"]
    with pytest.raises(InvalidRequest, match="matches no object"):
        expand_map(template, [], over="s3://b/none/*", chunk=1, to="s3://o",
                   input_dir="/in", output_dir="/out")  # fmt: skip


def test_dependency_graphs() -> None:
    check_graph({1: {0}, 2: {0, 1}}, 3)
    with pytest.raises(InvalidRequest, match="cycle"):
        check_graph({0: {1}, 1: {0}}, 2)
    with pytest.raises(InvalidRequest, match="after itself"):
        check_graph({0: {0}}, 1)
    with pytest.raises(InvalidRequest, match=r"@0\.\.@1"):
        check_graph({0: {2}}, 2)


def test_retry_policy() -> None:
    policy = parse_retry("3", "exit:75,76,oom")

    def exited(code: int) -> TaskLog:
        return TaskLog.model_validate({"logs": [{"exit_code": code}]})

    attempt = exited(75)
    assert retry_reason(policy, 1, S.EXECUTOR_ERROR, attempt) == "exit code 75"
    assert retry_reason(policy, 3, S.EXECUTOR_ERROR, attempt) == "exit code 75"
    assert retry_reason(policy, 4, S.EXECUTOR_ERROR, attempt) is None  # 1 + 3 attempts in all
    assert retry_reason(policy, 1, S.EXECUTOR_ERROR, exited(76))
    assert retry_reason(policy, 1, S.EXECUTOR_ERROR, exited(1)) is None
    assert retry_reason(policy, 1, S.EXECUTOR_ERROR, exited(137))
    assert retry_reason(policy, 1, S.SYSTEM_ERROR, attempt) is None  # not asked for
    assert retry_reason(policy, 1, S.CANCELED, attempt) is None
    default = parse_retry("1", None)
    assert retry_reason(default, 1, S.SYSTEM_ERROR, TaskLog()) == "a system error"
    assert retry_reason(default, 1, S.EXECUTOR_ERROR, attempt) is None
    assert retry_reason(parse_retry(None, None), 1, S.SYSTEM_ERROR, TaskLog()) is None
    for bad in ("exit:x", "sometimes"):
        with pytest.raises(InvalidRequest):
            parse_retry("1", bad)
    with pytest.raises(InvalidRequest, match="between 0 and 100"):
        parse_retry("1000", None)


def test_throttle_keeps_a_group_to_its_limit_and_lets_members_on_in_order() -> None:
    throttle = Throttle()
    throttle.limit("b", 2)
    reqs = [Request(f"t{i}", cpus=1, memory_gb=0, group="b") for i in range(5)]
    admitted = [r.task_id for r in reqs if throttle.admit(r)]
    assert admitted == ["t0", "t1"]
    assert throttle.holds("t4", "b")
    assert [r.task_id for r in throttle.release("b", "t0")] == ["t2"]
    assert throttle.release("b", "t4") == []  # left the backlog (cancelled): frees nothing
    assert [r.task_id for r in throttle.release("b", "t1")] == ["t3"]
    assert throttle.running("b") == 2
    assert throttle.admit(Request("free", cpus=1, memory_gb=0))  # no group, no limit


def test_a_long_throttled_batch_costs_the_scheduler_nothing() -> None:
    throttle, queue = Throttle(), Queue()
    throttle.limit("b", 2)
    for i in range(10_000):
        r = Request(f"t{i}", cpus=1, memory_gb=0, group="b")
        if throttle.admit(r):
            queue.add(r)
    assert len(queue) == 2
    assert [r.task_id for r in pick(queue, Capacity(64, 64))] == ["t0", "t1"]


def _member(cpu: str, run: float, state: str = "COMPLETE") -> object:
    log = TaskLog.model_validate({
        "start_time": "2026-01-01T00:00:00Z",
        "end_time": f"2026-01-01T00:00:{int(run) + 1:02d}Z",
        "logs": [{"start_time": "2026-01-01T00:00:00Z",
                  "end_time": f"2026-01-01T00:00:{int(run):02d}Z", "exit_code": 0}],
        "metadata": {"toolship.cpu_seconds": "1.5", "toolship.peak_memory_bytes": "1024"},
    })  # fmt: skip
    prices = PriceSettings(core_hour=3.6, gb_hour=0, gpu_hour=0)
    row = SimpleNamespace(id="id", name=None, state=TaskState(state), logs=[log], cpus=int(cpu),
                          memory_gb=1.0, gpus=0, spec={})  # fmt: skip
    return member_usage(row, {"cpu": cpu}, prices)


def test_usage_cost_and_scaling() -> None:
    one = _member("1", 8)
    assert one.run_seconds == 8 and one.wall_seconds == 9  # type: ignore[attr-defined]
    assert one.cost == pytest.approx(9 / 3600 * 3.6)  # type: ignore[attr-defined]
    assert one.cpu_seconds == 1.5 and one.peak_memory_bytes == 1024  # type: ignore[attr-defined]
    members = [one, _member("2", 4), _member("4", 4), _member("4", 9, "EXECUTOR_ERROR")]
    assert scaling_key(members) == "cpu"  # type: ignore[arg-type]
    points = scaling(members, "cpu")  # type: ignore[arg-type]
    assert [(p.n, p.speedup, p.efficiency) for p in points] == [
        (1, 1.0, 1.0), (2, 2.0, 1.0), (4, 2.0, 0.5),
    ]  # fmt: skip


def test_a_member_is_priced_for_every_node_its_parameters_ask_for_in_any_case() -> None:
    """As admission reads them: backend parameter keys are taken in any case."""
    log = TaskLog.model_validate(
        {"start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:10Z"}
    )
    prices = PriceSettings(core_hour=3600, gb_hour=0, gpu_hour=0)
    for params, nodes in (({"NODES": "2"}, 2), ({"nodes": "3"}, 3), ({}, 1)):
        spec = {"resources": {"backend_parameters": params}}
        row = SimpleNamespace(id="id", name=None, state=TaskState.COMPLETE, logs=[log], cpus=2,
                              memory_gb=0.0, gpus=0, spec=spec)  # fmt: skip
        member = member_usage(row, {}, prices)
        assert (member.cpus, member.cost) == (2 * nodes, 10.0 * 2 * nodes)
