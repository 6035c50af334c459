"""The MPI variant: every MPI rank reports where it runs, and an all-reduce checks they met.

mpirun --hostfile $TOOLSHIP_HOSTFILE python3 mpi.py
"""

from __future__ import annotations

import json
import os

from mpi4py import MPI


def main() -> None:
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    total = comm.allreduce(rank + 1, op=MPI.SUM)  # 1 + 2 + … + size on every rank
    report = {
        "mpi_rank": rank,
        "mpi_size": size,
        "host": MPI.Get_processor_name(),
        "node": os.environ.get("TOOLSHIP_NODE_NAME"),
        "toolship_rank": os.environ.get("TOOLSHIP_NODE_RANK"),
        "sum": total,
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
