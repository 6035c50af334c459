"""Data-parallel training of a small regression network, one process per node.

Started by torchrun (which sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT for
init_process_group): every rank builds the model from a seed of its own, so the
ranks start different; DistributedDataParallel copies rank 0's weights to all at
its start and averages the gradients over gloo at every step, so they end equal.
Every rank trains on its own share of the same synthetic data set (y = a fixed
random linear map of x, squashed, plus noise) and prints one JSON line: its rank,
its node, its losses and a SHA-256 of its parameters before and after.  Rank 0
saves the trained model to --checkpoint.

    torchrun --nnodes N --node_rank R --master_addr A --master_port P train.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def digest(model: nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in order: equal digests, equal weights."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def data(samples: int, features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same data set on every rank (one seed), made here instead of downloaded."""
    g = torch.Generator().manual_seed(2024)
    x = torch.randn(samples, features, generator=g)
    w = torch.randn(features, 1, generator=g)
    y = torch.tanh(x @ w / features**0.5) + 0.05 * torch.randn(samples, 1, generator=g)
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=4000, help="in all, over every rank")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64, help="per rank and step")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--checkpoint", default="/work/out/model.pt", help="rank 0 writes it")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo")  # env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    rank, world = dist.get_rank(), dist.get_world_size()

    features = 32
    torch.manual_seed(rank)  # a different start on every rank
    model = nn.Sequential(
        nn.Linear(features, args.hidden), nn.ReLU(),
        nn.Linear(args.hidden, args.hidden), nn.ReLU(),
        nn.Linear(args.hidden, 1),
    )  # fmt: skip
    before = digest(model)
    ddp = DistributedDataParallel(model)  # broadcasts rank 0's parameters to every rank
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.MSELoss()

    x, y = data(args.samples, features)
    share = args.samples // world  # the same number of steps on every rank
    x, y = x[rank::world][:share], y[rank::world][:share]  # this rank's share
    with torch.no_grad():
        first = loss_fn(model(x), y).item()
    order = torch.Generator().manual_seed(7)
    steps = 0
    started = time.perf_counter()
    for _ in range(args.epochs):
        for batch in torch.randperm(len(x), generator=order).split(args.batch):
            optimizer.zero_grad()
            loss_fn(ddp(x[batch]), y[batch]).backward()  # gradients averaged over the ranks
            optimizer.step()
            steps += 1
    seconds = time.perf_counter() - started
    with torch.no_grad():
        last = loss_fn(model(x), y).item()

    report = {
        "rank": rank,
        "world_size": world,
        "node": os.environ.get("TOOLSHIP_NODE_NAME", socket.gethostname()),
        "samples": len(x),
        "steps": steps,
        "seconds": round(seconds, 3),
        "loss_before": round(first, 5),
        "loss_after": round(last, 5),
        "params_before": before,
        "params_after": digest(model),
    }
    print(json.dumps(report), flush=True)
    if rank == 0:
        Path(args.checkpoint).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "report": report}, args.checkpoint)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
