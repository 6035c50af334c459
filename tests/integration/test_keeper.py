"""The keeper that starts this host's executors: real processes, no container runtime."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from toolship.runtime import ExecSpec
from toolship.runtime.keeper import Keeper, alive, read_exit_file
from toolship.runtime.launch import Launched, find_launched, launch
from toolship.runtime.process import ProcessRuntime

T = TypeVar("T")


def run(body: Callable[[Keeper], Awaitable[T]]) -> T:
    async def main() -> T:
        keeper = Keeper()
        try:
            return await body(keeper)
        finally:
            keeper.close()

    return asyncio.run(main())


def spec(root: Path, *command: str, user: tuple[int, int] | None = None) -> ExecSpec:
    return ExecSpec(
        name="t",
        task_id="t",
        image="-",
        command=command,
        workdir=None,
        env={"A": "1"},
        mounts=(),
        root=root,
        user=user or (os.getuid(), os.getgid()),
    )


async def start(keeper: Keeper, root: Path, *command: str, stdin: int | None = None,
                user: tuple[int, int] | None = None) -> Launched:  # fmt: skip
    return await launch(
        ProcessRuntime(),
        spec(root, *command, user=user),
        stdin=stdin,
        stdout=root / "stdout",
        stderr=root / "stderr",
        exit_file=root / "exit",
        keeper=keeper,
    )


def test_exit_codes_streams_and_the_exit_file(tmp_path: Path) -> None:
    async def body(keeper: Keeper) -> list[tuple[int | None, str, str]]:
        ends = []
        for command in ("echo out $A; echo err >&2; exit 3", "kill -9 $$"):
            launched = await start(keeper, tmp_path, "sh", "-c", command)
            code = await launched.wait()
            assert read_exit_file(tmp_path / "exit") == code  # written before it is told
            assert await launched.wait() == code  # asked again: the same answer
            streams = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
            ends.append((code, *streams))
        return ends

    assert run(body) == [(3, "out 1\n", "err\n"), (128 + signal.SIGKILL, "", "")]


# As the keeper's own user (posix_spawn), and as another (a root server's task user).
USERS = [None, (65534, 65534)] if os.geteuid() == 0 else [None]


@pytest.mark.parametrize("user", USERS)
def test_a_missing_command_exits_127_and_says_why(
    tmp_path: Path, user: tuple[int, int] | None
) -> None:
    tmp_path.chmod(0o755)

    async def body(keeper: Keeper) -> tuple[int | None, str, int | None]:
        code = await (await start(keeper, tmp_path, "/no/such/command", user=user)).wait()
        said = (tmp_path / "stderr").read_text()
        # The keeper is itself again: the next command runs as the keeper's user.
        after = await (await start(keeper, tmp_path, "sh", "-c", "id -u >&2")).wait()
        return code, said, after

    code, said, after = run(body)
    assert code == 127
    assert said == (f"toolship: cannot run '/no/such/command' in {tmp_path}: No such file "
                    "or directory\n")  # fmt: skip
    assert after == 0 and (tmp_path / "stderr").read_text() == f"{os.geteuid()}\n"


def test_stdin_and_a_session_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "in").write_text("piped\n")
    fd = os.open(tmp_path / "in", os.O_RDONLY)

    try:
        code, pid = run(lambda k: _with_stdin(k, tmp_path, fd))
    finally:
        os.close(fd)
    assert code == 0
    piped, sid = (tmp_path / "stdout").read_text().split()
    assert piped == "piped" and int(sid) == pid  # stopping it is one signal to its group


async def _with_stdin(keeper: Keeper, root: Path, fd: int) -> tuple[int | None, int]:
    launched = await start(keeper, root, "sh", "-c", "cat; ps -o sid= -p $$", stdin=fd)
    return await launched.wait(), launched.pid


def test_the_executor_outlives_its_server_and_is_found_again(tmp_path: Path) -> None:
    """The server's end closes (kill -9): the keeper records the code; a new server finds
    the executor by the marker in its environment, without knowing its pid."""
    release = tmp_path / "release"

    async def body(keeper: Keeper) -> int | None:
        command = f"while [ ! -e {release} ]; do sleep 0.05; done; exit 7"
        await start(keeper, tmp_path, "sh", "-c", command)
        keeper.close()  # as a dead server's socket
        found = find_launched(None, tmp_path / "exit")
        assert found is not None and found.running()
        release.touch()
        return await found.wait()

    assert run(body) == 7
    assert read_exit_file(tmp_path / "exit") == 7


def test_a_dead_keeper_leaves_an_unknown_result_and_is_replaced(tmp_path: Path) -> None:
    async def body(keeper: Keeper) -> tuple[int | None, int | None]:
        launched = await start(keeper, tmp_path, "sleep", "0.5")
        assert keeper._pid is not None
        os.kill(keeper._pid, signal.SIGKILL)
        lost = await asyncio.wait_for(launched.wait(), 10)  # followed until it is gone
        assert not launched.running()
        again = await start(keeper, tmp_path / "..", "true")  # a new keeper starts it
        return lost, await again.wait()

    t0 = time.monotonic()
    assert run(body) == (None, 0)
    assert time.monotonic() - t0 >= 0.5  # the executor ran its course: not killed with it


@pytest.mark.skipif(os.geteuid() != 0, reason="drops to another user: needs a root server")
def test_a_root_server_runs_host_commands_as_the_task_user(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    out = tmp_path / "stdout"

    async def body(keeper: Keeper) -> int | None:
        command = "id -G; grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Amb)):' /proc/self/status"
        launched = await start(keeper, tmp_path, "sh", "-c", command, user=(65534, 65534))
        return await launched.wait()

    assert run(body) == 0
    groups, *status = out.read_text().splitlines()
    assert groups == "65534"  # no supplementary group of the server's
    fields = {line.split(":")[0]: line.split()[1:] for line in status}
    assert fields["Uid"] == fields["Gid"] == ["65534"] * 4  # real, effective, saved, fs
    assert fields["Groups"] == []
    assert all(fields[cap] == ["0" * 16] for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"))


def test_a_spec_for_the_task_user_as_root_is_plain(tmp_path: Path) -> None:
    as_root = dataclasses.replace(spec(tmp_path, "true"), user=(0, 0))
    assert ProcessRuntime().run_as(as_root) is None  # local.task_user = "0:0"


def test_without_a_directory_it_starts_where_the_server_was(tmp_path: Path) -> None:
    """Not where the last executor started (a container's podman run gives none)."""
    out = os.open(tmp_path / "stdout", os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    async def body(keeper: Keeper) -> None:
        for cwd in (tmp_path, None):
            pid = await keeper.spawn(["pwd"], cwd=cwd, env=None, exit_file=tmp_path / "exit",
                                     user=None, stdin=None, stdout=out, stderr=out)  # fmt: skip
            assert pid is not None
            await Launched(pid=pid, exit_file=tmp_path / "exit", keeper=keeper).wait()

    try:
        run(body)
    finally:
        os.close(out)
    assert (tmp_path / "stdout").read_text().split() == [str(tmp_path), str(Path.cwd())]


@pytest.mark.skipif(os.geteuid() != 0, reason="a capability to inherit: needs root")
def test_a_keeper_started_with_inheritable_capabilities_empties_them() -> None:
    """What ``setpriv --inh-caps=-all`` did for each host command, the keeper does once."""
    script = (
        "from pathlib import Path\n"
        "from toolship.runtime.keeper import _clear_inheritable_capabilities\n"
        "def inh(): return [ln.split()[1] for ln in Path('/proc/self/status').read_text()"
        ".splitlines() if ln.startswith('CapInh:')][0]\n"
        "before = inh(); _clear_inheritable_capabilities(); print(before, inh())\n"
    )
    done = subprocess.run(
        ["setpriv", "--inh-caps=+chown", "--", sys.executable, "-c", script],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.split() == ["0000000000000001", "0000000000000000"]


def test_an_ended_executor_counts_as_running_until_its_keeper_wrote_its_code(
    tmp_path: Path,
) -> None:
    """A keeper collects an ended executor only after writing its exit file: until then it
    is a zombie of a keeper, and a server following it by pid (after a restart) waits for
    the code instead of taking it for an executor gone without one."""
    code = (
        "import os, sys\n"
        "pid = os.fork()\n"
        "if pid == 0: os._exit(0)\n"
        "print(pid, flush=True); sys.stdin.readline()\n"  # holds it, a zombie, until told
        "os.waitpid(pid, 0); print('collected', flush=True); sys.stdin.readline()\n"
    )
    exit_file = tmp_path / "exit"
    for argv0, counts in (("runtime/keeper.py", True), ("something/else.py", False)):
        with subprocess.Popen([sys.executable, "-c", code, argv0], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) as holder:  # fmt: skip
            assert holder.stdin is not None and holder.stdout is not None
            child = int(holder.stdout.readline())
            deadline = time.monotonic() + 30
            while Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
                assert time.monotonic() < deadline, "the child did not end"
                time.sleep(0.01)
            assert alive(child, exit_file) is counts
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.stdout.readline() == "collected\n"
            assert not alive(child, exit_file)
            holder.kill()
