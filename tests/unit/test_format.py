from __future__ import annotations

from rich.console import Console

from toolship.cli.format import exit_code_of, print_show, ps_line
from toolship.models import REPLY, TaskDetails, TaskView


def task(state: str, codes: list[int], system: list[str] | None = None) -> TaskView:
    attempt: dict[str, object] = {"logs": [{"exit_code": c} for c in codes], "outputs": []}
    if system is not None:
        attempt["system_logs"] = system
    return TaskView.model_validate({"id": "t", "state": state, "logs": [attempt]}, context=REPLY)


def test_run_exits_like_the_tool_or_says_why_not() -> None:
    assert exit_code_of(task("COMPLETE", [0, 4])) == 0  # ignore_error executor
    assert exit_code_of(task("EXECUTOR_ERROR", [0, 3])) == 3
    assert exit_code_of(task("EXECUTOR_ERROR", [137], ["executor 0 timed out after 2s"])) == 124
    assert exit_code_of(task("SYSTEM_ERROR", [])) == 125
    assert exit_code_of(task("CANCELED", [137])) == 130


def test_show_says_which_runtime_ran_and_the_resources_the_server_decided() -> None:
    details = TaskDetails.model_validate(
        {
            "task": {"id": "t", "state": "COMPLETE", "executors": [
                {"image": "busybox", "command": ["true"]}]},
            "runtime": "podman",
            "resources": {"cpu_cores": 1, "ram_gb": 2.0,
                          "backend_parameters": {"runtime": "podman"}},
        },
        context=REPLY,
    )  # fmt: skip
    console = Console(record=True, width=200)
    print_show(console, details)
    shown = console.export_text()
    assert "runtime    podman\n" in shown
    assert "resources  1 cpu, 2 GiB memory, no network\n" in shown


def test_show_lists_each_rank_with_its_node_and_exit_and_names_the_failed_one() -> None:
    details = TaskDetails.model_validate(
        {
            "task": {"id": "t", "state": "EXECUTOR_ERROR", "executors": [
                {"image": "busybox", "command": ["true"]}]},
            "ranks": [
                {"executor": 0, "rank": 0, "node": "node1", "exit_code": 0},
                {"executor": 0, "rank": 1, "node": "node2", "exit_code": 3},
                {"executor": 0, "rank": 2, "node": "node3", "exit_code": None},
            ],
        },
        context=REPLY,
    )  # fmt: skip
    console = Console(record=True, width=200)
    print_show(console, details)
    shown = console.export_text()
    assert "  ranks, executor 0:\n    rank  node   exit\n" in shown, shown
    assert "       0  node1     0\n" in shown, shown
    assert "       1  node2     3  failed\n" in shown, shown
    assert "       2  node3     -  no exit code (killed, or never started)\n" in shown, shown
    assert "rank 1 on node2 failed with exit code 3" in shown, shown


def test_show_of_a_one_node_task_has_no_ranks() -> None:
    details = TaskDetails.model_validate({"task": {"id": "t", "state": "COMPLETE"}}, context=REPLY)
    console = Console(record=True, width=200)
    print_show(console, details)
    assert "rank" not in console.export_text()


def test_ps_clips_long_names_and_images_keeping_their_ends() -> None:
    """Trials 10 and 11 of a series stay apart, and an image keeps its tag."""
    image = "registry.example.org/lab/tools/segy-indexer:2.4.1"

    def line(name: str) -> str:
        task = TaskView.model_validate(
            {"id": "t1", "state": "COMPLETE", "name": name,
             "executors": [{"image": image, "command": ["x"]}]}
        )  # fmt: skip
        return ps_line(task)

    ten, eleven = line("diabetes-krr-trial-10"), line("diabetes-krr-trial-11")
    assert "diabetes-…r-trial-10" in ten and "diabetes-…r-trial-11" in eleven
    assert "registry.examp…y-indexer:2.4.1" in ten
    assert "short-name" in line("short-name") and "…" not in line("short-name").split()[2]
