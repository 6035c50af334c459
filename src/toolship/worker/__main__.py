"""``python -m toolship.worker --server URL --task ID``: what a Slurm batch script runs.

The same as ``toolship worker``, without loading the command-line interface.
"""

from __future__ import annotations

import os


def run() -> int:
    # No pydantic plugins on a compute node: looking for them reads every installed
    # package's metadata, a noticeable part of a short job's start-up.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from toolship.worker.remote import main

    return main()


raise SystemExit(run())
