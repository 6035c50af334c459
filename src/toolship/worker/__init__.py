"""Runs one attempt of one task anywhere: stage in, run the executors, stage out, report."""

from __future__ import annotations

from toolship.worker.worker import Job, Reporter, Worker, WorkerEnv

__all__ = ["Job", "Reporter", "Worker", "WorkerEnv"]
