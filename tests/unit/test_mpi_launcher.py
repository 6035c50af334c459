"""mpi=launcher: the agent's protocol (hub, agent, Open MPI's rsh call) over real sockets on
this machine, the ranks' files and variables, and the option.  No container: the agent is
the same file every rank's python3 runs."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolship.errors import InvalidRequest
from toolship.models import Resources
from toolship.options import OptionDefaults, read_options
from toolship.worker import mpi_agent
from toolship.worker.mpi_agent import AgentError, Hub, Setting, offer_handshake, rsh, serve_agent
from toolship.worker.ranks import MPI_AGENT, local_ranks


def setting(tmp_path: Path, rank: int, port: int = 0, secret: str = "s3cret") -> Setting:
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("node1 slots=1\nnode2 slots=1\n")
    secret_file = tmp_path / f"secret-{rank}-{secret}"
    secret_file.write_text(secret + "\n")
    env = {
        "TOOLSHIP_NODE_RANK": str(rank),
        "TOOLSHIP_MAIN_ADDR": "127.0.0.1",
        "TOOLSHIP_MPI_PORT": str(port),
        "TOOLSHIP_HOSTFILE": str(hostfile),
    }
    return Setting(env, secret_file=str(secret_file))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """Rank 0's hub on a port of its own choosing (no race for a free one)."""
    found = Hub(setting(tmp_path, 0), join_seconds=5)
    found.setting.port = found.listener.getsockname()[1]
    found.serve()
    yield found
    for conn in found.agents.values():  # agents still joined leave
        with contextlib.suppress(OSError):  # gone already
            conn.shutdown(socket.SHUT_RDWR)
    found.listener.close()


def agent(tmp_path: Path, hub: Hub) -> threading.Thread:
    """Rank 1's agent, joined."""
    thread = threading.Thread(
        target=serve_agent, args=(setting(tmp_path, 1, hub.setting.port),), daemon=True
    )
    thread.start()
    assert hub.wait_agent(1) is not None
    return thread


def test_a_command_runs_on_the_other_rank_with_its_output_and_exit_code(
    tmp_path: Path, hub: Hub, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    serving = agent(tmp_path, hub)
    here = setting(tmp_path, 0, hub.setting.port)
    code = rsh(here, "node2", ["echo", "out;", "echo", "err", ">&2;", "exit", "3"])
    assert code == 3
    out, err = capfdbinary.readouterr()
    assert (out, err) == (b"out\n", b"err\n")
    hub.close()  # rank 0's command ended: the agent is told to leave, and does
    serving.join(5)
    assert not serving.is_alive()


def test_the_command_ends_when_mpirun_drops_its_call(tmp_path: Path, hub: Hub) -> None:
    agent(tmp_path, hub)
    pidfile = tmp_path / "pid"
    call = socket.create_connection(("127.0.0.1", hub.setting.port))
    command = f"echo $$ > {pidfile}; exec sleep 60"
    offer_handshake(call, b"s3cret", {"role": "run", "host": "node2", "command": command})
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()))
    call.close()  # mpirun killed its rsh agent
    wait_for(lambda: not alive(pid))


def test_without_the_secret_nothing_joins_or_runs(tmp_path: Path, hub: Hub) -> None:
    stranger = setting(tmp_path, 1, hub.setting.port, secret="guess")
    with pytest.raises(AgentError, match="did not prove this task's secret"):
        serve_agent(stranger, seconds=1)  # a wrong hub is refused the same way
    assert hub.agents == {}


def test_a_host_outside_the_hostfile_is_named_with_the_fix(tmp_path: Path, hub: Hub) -> None:
    with pytest.raises(AgentError) as raised:
        rsh(setting(tmp_path, 0, hub.setting.port), "node9", ["orted"])
    assert "'node9', which is not a node of this task" in str(raised.value)
    assert "names node1, node2): give mpirun --hostfile $TOOLSHIP_HOSTFILE" in str(raised.value)


def test_a_rank_that_never_joins_is_named(tmp_path: Path, hub: Hub) -> None:
    hub.join_seconds = 0.2
    with pytest.raises(AgentError, match=r"rank 1 \(node2\) did not join rank 0 within"):
        rsh(setting(tmp_path, 0, hub.setting.port), "node2", ["orted"])


def test_an_agent_without_its_hub_says_why(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    with pytest.raises(AgentError, match=r"rank 1 cannot reach rank 0 at 127.0.0.1:\d+"):
        serve_agent(setting(tmp_path, 1, port), seconds=0.3)


def test_an_image_without_python3_is_named_with_the_fix(tmp_path: Path) -> None:
    _, *argv = local_ranks(2, mpi=True).command(("mpirun", "true"))
    done = subprocess.run(
        ["/bin/sh", *argv], env={"PATH": str(tmp_path)}, capture_output=True, text=True
    )
    assert done.returncode == 127
    assert "this image has no python3: install python3 in the image" in done.stderr


def test_launcher_ranks_name_each_rank_with_slots_and_point_open_mpi_at_the_agent(
    tmp_path: Path,
) -> None:
    ranks = local_ranks(2, mpi=True, slots=3)
    assert ranks.hostfile_text() == "rank0 slots=3\nrank1 slots=3\n"
    env = ranks.environment()
    assert env["OMPI_MCA_plm_rsh_agent"] == f"python3 {MPI_AGENT}"
    assert env["OMPI_MCA_btl_tcp_if_include"] == "lo"  # the pod's only network
    assert env["TOOLSHIP_MPI_PORT"] == str(ranks.port + 1)
    mounts = ranks.files(tmp_path)
    assert [m.container for m in mounts] == [
        "/toolship/hostfile",
        MPI_AGENT,
        mpi_agent.SECRET_FILE,
    ]
    assert all(m.readonly for m in mounts)
    assert (tmp_path / "mpi-agent").read_bytes() == Path(mpi_agent.__file__).read_bytes()
    first = (tmp_path / "mpi-secret").read_text()
    ranks.files(tmp_path)
    assert len(first) == 64 and (tmp_path / "mpi-secret").read_text() != first  # per attempt
    # without mpi=launcher nothing changes: "localhost" per rank, the command as it is
    plain = local_ranks(2)
    assert plain.hostfile_text() == "localhost\nlocalhost\n"
    assert plain.command(("mpirun",)) == ("mpirun",)
    assert "OMPI_MCA_plm_rsh_agent" not in plain.environment()


def test_the_option() -> None:
    def read(**params: str) -> bool:
        res = Resources(backend_parameters=params)
        return read_options(res, OptionDefaults(runtime="podman", cpus=1, memory_gb=1)).mpi_launcher

    assert read(nodes="2", mpi="Launcher")
    assert not read(nodes="1", mpi="launcher")  # one node: mpirun starts its processes itself
    assert not read(nodes="2")
    with pytest.raises(InvalidRequest, match="mpi='ssh' is unknown; use launcher"):
        read(nodes="2", mpi="ssh")


def wait_for(probe: object, seconds: float = 10) -> object:
    assert callable(probe)
    deadline = time.monotonic() + seconds
    while not (found := probe()):
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
