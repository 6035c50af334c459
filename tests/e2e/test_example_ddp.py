"""examples/ddp as its README runs it (issue 20, example 1): a small PyTorch model trained
with DistributedDataParallel (gloo, CPU) on two nodes, started by torchrun in every rank of
`toolship run --nodes 2`, on the local backend and on the two-node Slurm cluster; and the
MPI variant (mpi4py, mpirun with toolship's hostfile).

Each rank prints one JSON line; the test reads every rank's line through the SDK
(Client.logs(rank=R)), as `toolship logs ID --rank R` prints it.  The ranks start from
different weights (a seed each) and must end with the same ones: DDP broadcast rank 0's
and averaged every step's gradients over gloo.  Rank 0's checkpoint must reach the task's
file:// output, and hold those weights.  The training is a few seconds.
"""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, require
from tests.conftest import toolship as run_cli
from toolship import Client

EXAMPLE = ROOT / "examples" / "ddp"
SCIENCE = "localhost/toolship-science"
TORCHRUN = (
    "torchrun --nnodes $WORLD_SIZE --nproc_per_node 1 --node_rank $RANK "
    "--master_addr $MASTER_ADDR --master_port $MASTER_PORT train.py"
)
MPIRUN = "mpirun --hostfile $TOOLSHIP_HOSTFILE python3 mpi.py"
# The parameters' SHA-256 as train.py's digest() computes it, from the saved state_dict.
CHECKPOINT_DIGEST = (
    "import hashlib, torch\n"
    "h = hashlib.sha256()\n"
    "for v in torch.load('model.pt')['model'].values():\n"
    "    h.update(v.contiguous().numpy().tobytes())\n"
    "print(h.hexdigest()[:16])\n"
)


@pytest.fixture(scope="session")
def science_image(busybox: str) -> str:
    ok = subprocess.run(["podman", "image", "exists", SCIENCE], check=False).returncode == 0
    require(ok, f"image {SCIENCE}", "run scripts/build-images.sh science")
    return SCIENCE


def toolship(*args: str) -> tuple[str, str]:
    """Run the CLI attached; the task's id (`task ID` on stderr) and what it printed."""
    done = run_cli(*args, timeout=180)
    assert done.returncode == 0, f"toolship {' '.join(args)}:\n{done.stdout}{done.stderr}"
    found = re.search(r"^task (\S+)$", done.stderr, re.MULTILINE)
    assert found, done.stderr
    return found[1], done.stdout


def rank_lines(server: Any, task_id: str, ranks: int) -> list[list[str]]:
    """Each rank's stdout lines, read through the SDK."""
    with Client(server.url, server.token) as client:
        return [b"".join(client.logs(task_id, rank=r)).decode().splitlines() for r in range(ranks)]


# On the local backend the sweep below runs the same two-node training (and one node)
@pytest.mark.parametrize("backend", ["slurm"], indirect=True)
def test_ddp_on_two_nodes_ends_with_equal_parameters_and_a_checkpoint(
    backend: str, server: Any, science_image: str, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "model.pt"
    task_id, printed = toolship(
        "run", "--nodes", "2", "--content", f"/work/train.py=@{EXAMPLE / 'train.py'}",
        "-o", f"/work/out/model.pt={checkpoint.as_uri()}",
        science_image, "--", "sh", "-c", TORCHRUN,
    )  # fmt: skip
    reports = [json.loads(lines[-1]) for lines in rank_lines(server, task_id, 2)]
    for report in reports:
        print(f"{backend} rank {report['rank']}: {json.dumps(report)}")
    first, second = reports
    assert [r["rank"] for r in reports] == [0, 1]
    assert first["world_size"] == second["world_size"] == 2
    assert first["steps"] == second["steps"] > 0
    # different starts, the same end: DDP's broadcast and gradient all-reduce worked
    assert first["params_before"] != second["params_before"]
    assert first["params_after"] == second["params_after"]
    for r in reports:
        assert r["loss_after"] < r["loss_before"] / 4, r  # it learned
    if backend == "slurm":
        assert (first["node"], second["node"]) == ("node1", "node2")
    # the attached run printed both ranks' lines, labelled
    for r in reports:
        assert f"{r['rank']}: {json.dumps(r)}" in printed.splitlines(), printed

    # rank 0's checkpoint reached its file:// output, a torch.save archive
    assert zipfile.is_zipfile(checkpoint)


def test_a_sweep_over_nodes_runs_the_same_command_on_one_and_two_nodes_and_reports_scaling(
    server: Any, science_image: str, tmp_path: Path
) -> None:
    """The README's sweep on the local backend, at the default size: nodes=1 runs the plain torchrun
    command (WORLD_SIZE=1, RANK=0, MASTER_ADDR/PORT), nodes=2 two ranks that end equal; the
    report gives speed-up and efficiency over nodes and draws them."""
    swept = run_cli(
        "sweep", "--param", "nodes=1,2", "--max-parallel", "1",
        "--content", f"/work/train.py=@{EXAMPLE / 'train.py'}",
        "-o", f"/work/out/model.pt={tmp_path.as_uri()}/model-{{nodes}}.pt",
        science_image, "--", "sh", "-c", TORCHRUN,
        timeout=180,
    )  # fmt: skip
    assert swept.returncode == 0 and "COMPLETE 2" in swept.stdout, swept.stdout + swept.stderr
    batch_id = swept.stdout.split()[1]
    png = tmp_path / "scaling.png"
    text = run_cli("report", batch_id, "--png", str(png)).stdout
    print(text)
    assert "scaling over nodes" in text
    assert re.search(r"nodes=1 +T=[0-9.]+s +speed-up 1\.00 +efficiency 100%", text), text
    assert re.search(r"nodes=2 +T=[0-9.]+s +speed-up [0-9.]+ +efficiency [0-9]+%", text), text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rows = re.findall(r"^(\S+) +nodes=([12]) +COMPLETE ", text, re.MULTILINE)
    task_of = {int(nodes): task_id for task_id, nodes in rows}
    (alone,) = [json.loads(lines[-1]) for lines in rank_lines(server, task_of[1], 1)]
    print(f"nodes=1: {json.dumps(alone)}")
    assert (alone["rank"], alone["world_size"]) == (0, 1)
    assert alone["loss_after"] < alone["loss_before"] / 4, alone
    reports = [json.loads(lines[-1]) for lines in rank_lines(server, task_of[2], 2)]
    for report in reports:
        print(f"nodes=2 rank {report['rank']}: {json.dumps(report)}")
    first, second = reports
    assert [r["rank"] for r in reports] == [0, 1]
    assert first["world_size"] == second["world_size"] == 2
    assert first["samples"] == second["samples"] == alone["samples"] // 2  # half the data each
    assert first["steps"] == second["steps"] > 0
    # different starts, the same end: DDP's broadcast and gradient all-reduce worked
    assert first["params_before"] != second["params_before"]
    assert first["params_after"] == second["params_after"]
    for r in reports:
        assert r["loss_after"] < r["loss_before"] / 4, r

    # rank 0's checkpoint reached its file:// output and holds the weights both ranks ended with
    checkpoint = tmp_path / "model-2.pt"
    assert zipfile.is_zipfile(checkpoint) and zipfile.is_zipfile(tmp_path / "model-1.pt")
    _, loaded = toolship(
        "run", "-i", f"/work/model.pt={checkpoint}", "--content",
        f"/work/digest.py={CHECKPOINT_DIGEST}", science_image, "--", "python3", "digest.py",
    )  # fmt: skip
    assert loaded.splitlines()[-1] == first["params_after"], loaded


def test_mpi_variant_every_rank_reports(backend: str, server: Any, science_image: str) -> None:
    """mpi=launcher: rank 0's mpirun starts one MPI process in every rank's container."""
    task_id, printed = toolship(
        "run", "--nodes", "2", "-b", "mpi=launcher",
        "--content", f"/work/mpi.py=@{EXAMPLE / 'mpi.py'}",
        science_image, "--", "sh", "-c", MPIRUN,
    )  # fmt: skip
    launcher, other = rank_lines(server, task_id, 2)
    print(printed)
    reports = sorted((json.loads(line) for line in launcher), key=lambda r: r["mpi_rank"])
    for report in reports:
        print(f"{backend} MPI rank {report['mpi_rank']}: {json.dumps(report)}")
    assert [r["mpi_rank"] for r in reports] == [0, 1]
    assert all(r["mpi_size"] == 2 and r["sum"] == 3 for r in reports)  # the all-reduce met
    # one MPI process in each toolship rank's container: mpirun reached rank 1's
    assert sorted(r["toolship_rank"] for r in reports) == ["0", "1"]
    if backend == "slurm":
        assert sorted(r["node"] for r in reports) == ["node1", "node2"]
    assert other == []  # rank 1's agent ran the MPI daemon; its output went to mpirun


def test_the_readme_shows_the_commands_this_test_runs() -> None:
    readme = (EXAMPLE / "README.md").read_text()
    assert f"-- sh -c '{TORCHRUN}'" in readme
    mpi = "-b mpi=launcher --content /work/mpi.py=@mpi.py \\\n    localhost/toolship-science"
    assert f"{mpi} -- sh -c '{MPIRUN}'" in readme


def test_the_readme_shows_the_sweep_over_nodes() -> None:
    readme = (EXAMPLE / "README.md").read_text()
    assert "toolship sweep --param nodes=1,2 " in readme
    assert f"-- sh -c '{TORCHRUN} --samples 40000 --epochs 3'" in readme
    assert "scaling over nodes" in readme and "](scaling.png)" in readme
    assert (EXAMPLE / "scaling.png").stat().st_size < 100_000
