"""Every rank of a multi-node task reaches the user: labelled logs, each rank's node and exit.

The real local backend and worker run the ranks (the rank wrapper and the local
launcher are the real shell scripts) with the fake runtime instead of podman, so
the ranks are host processes: the in-process twin of the two-node tests in
tests/integration/test_executors.py.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from tests.api.conftest import TOKEN, Server, create, get, wait
from tests.api.test_real_worker import local
from toolship.cli.context import Ctx
from toolship.cli.tasks import logs, run, show
from toolship.client import Client

# Each rank says hello on both streams, then a second line; rank 1 fails.
SCRIPT = 'echo "hello from $RANK"; echo "warn $RANK" >&2; echo "bye $RANK"; [ $RANK = 0 ] || exit 3'
TWO_NODES = {"resources": {"backend_parameters": {"nodes": "2"}}}


@pytest.fixture
def real(server: Server) -> Server:
    server.config = {"local": {"runtime": "process", "accounting": False, "cpus": 2,
                               "memory_gb": 8}}  # fmt: skip
    return server


@contextmanager
def sdk(server: Server) -> Iterator[Client]:
    with server.run(local) as api:
        yield Client("http://toolship.test", TOKEN, transport=api._transport)


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_each_rank_s_node_and_exit_code_are_recorded_and_a_failed_rank_fails_the_task(
    real: Server,
) -> None:
    with real.run(local) as api:
        tid = create(api, "sh", "-c", SCRIPT, **TWO_NODES)
        assert wait(api, tid) == "EXECUTOR_ERROR", get(api, tid)["logs"]
        assert get(api, tid)["logs"][0]["logs"][0]["exit_code"] == 3
        details = api.get(f"/api/v1/tasks/{tid}").json()
        host = socket.gethostname()
        assert details["ranks"] == [
            {"executor": 0, "rank": 0, "node": host, "exit_code": 0},
            {"executor": 0, "rank": 1, "node": host, "exit_code": 3},
        ]
        assert "ranks" not in get(api, tid)  # the TES task stays spec-shaped


def test_all_ranks_stream_labelled_lines_in_each_rank_s_order(real: Server) -> None:
    with real.run(local) as api:
        tid = create(api, "sh", "-c", SCRIPT, **TWO_NODES)
        for follow in ("true", "false"):
            params = {"all_ranks": "true", "follow": follow}
            out = api.get(f"/api/v1/tasks/{tid}/logs", params=params).text
            assert _lines(out, "0: ") == ["0: hello from 0", "0: bye 0"], out
            assert _lines(out, "1: ") == ["1: hello from 1", "1: bye 1"], out
            assert len(out.splitlines()) == 4, out
            err = api.get(f"/api/v1/tasks/{tid}/logs", params={**params, "stream": "stderr"})
            assert sorted(err.text.splitlines()) == ["0: warn 0", "1: warn 1"]
        both = api.get(f"/api/v1/tasks/{tid}/logs", params={"all_ranks": "true", "rank": "1"})
        assert both.status_code == 400 and "not both" in both.text, both.text
        one = create(api, "sh", "-c", "echo alone; printf partial")
        assert wait(api, one) == "COMPLETE"
        alone = api.get(f"/api/v1/tasks/{one}/logs", params={"all_ranks": "true"})
        assert alone.text == "alone\npartial"  # one node: unlabelled, byte for byte


def test_an_attached_run_shows_every_rank_labelled_and_show_names_the_failed_rank(
    real: Server,
) -> None:
    with sdk(real) as client:
        ctx = Ctx(server=None, token=None, _client=client)
        runner = CliRunner()
        result = runner.invoke(run, ["--nodes", "2", "x", "--", "sh", "-c", SCRIPT], obj=ctx)
        assert result.exit_code == 3, result.output
        assert _lines(result.stdout, "1: ") == ["1: hello from 1", "1: bye 1"], result.stdout
        assert _lines(result.stdout, "0: ") == ["0: hello from 0", "0: bye 0"], result.stdout
        assert {"0: warn 0", "1: warn 1"} <= set(result.stderr.splitlines()), result.stderr
        assert "warn" not in result.stdout
        started = re.search(r"^task (\S+)$", result.stderr, re.MULTILINE)  # "task ID" first
        assert started is not None, result.stderr
        tid = started.group(1)
        shown = runner.invoke(show, [tid], obj=ctx)
        assert shown.exit_code == 0, shown.output
        text = shown.stdout
        assert "rank  node" in text and "exit" in text, text
        assert f"rank 1 on {socket.gethostname()} failed with exit code 3" in text, text
        assert client.details(tid).ranks[1].exit_code == 3  # the SDK reads them too


def test_logs_all_ranks_labels_every_rank_and_refuses_a_rank_with_it(real: Server) -> None:
    with sdk(real) as client:
        ctx = Ctx(server=None, token=None, _client=client)
        task = client.run("x", ["sh", "-c", SCRIPT], nodes=2)
        runner = CliRunner()
        shown = runner.invoke(logs, [task.id, "--all-ranks", "--stderr"], obj=ctx)
        assert sorted(shown.stdout.splitlines()) == ["0: warn 0", "1: warn 1"], shown.output
        both = runner.invoke(logs, [task.id, "--all-ranks", "--rank", "1"], obj=ctx)
        assert both.exit_code == 2 and "not both" in both.output, both.output


def test_a_task_that_asks_for_one_node_gets_the_ranks_variables_as_the_only_rank(
    real: Server,
) -> None:
    """So `torchrun --nnodes $WORLD_SIZE …` and a sweep over nodes = 1, 2 run unchanged."""
    show_env = (
        'echo "$WORLD_SIZE $RANK $NODE_RANK $LOCAL_RANK $MASTER_ADDR:$MASTER_PORT '
        '$TOOLSHIP_NODE_NAME $TOOLSHIP_HOSTFILE"'
    )
    one = {"resources": {"backend_parameters": {"nodes": "1"}}}
    with sdk(real) as client:
        asked = client.task(create_via(client, show_env, one))
        assert asked.wait(60).value == "COMPLETE", asked.info().logs
        host = socket.gethostname()
        assert asked.logs() == f"1 0 0 0 127.0.0.1:29500 {host} /toolship/hostfile\n"
        plain = client.task(create_via(client, 'echo "[$WORLD_SIZE$RANK]"', {}))
        assert plain.wait(60).value == "COMPLETE"
        assert plain.logs() == "[]\n"  # not asked: a plain task, as before


def create_via(client: Client, script: str, extra: dict[str, object]) -> str:
    doc = {"executors": [{"image": "busybox", "command": ["sh", "-c", script]}], **extra}
    return client.create(doc).id
