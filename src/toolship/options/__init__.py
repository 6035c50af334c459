"""What a task asks of the executor, read from its TES resources — pure vocabulary.

Shared by the engine (admission, scheduling, retries), the compute backends and
the worker; it sits below all of them and imports none of them.
"""

from __future__ import annotations

from toolship.options.retry import RetryPolicy, parse_retry, retry_reason
from toolship.options.task import (
    BACKEND_PARAMETERS,
    SECRET_PARAMETERS,
    SLURM_PARAMETERS,
    OptionDefaults,
    TaskOptions,
    node_count,
    read_options,
)

__all__ = [
    "BACKEND_PARAMETERS",
    "SECRET_PARAMETERS",
    "SLURM_PARAMETERS",
    "OptionDefaults",
    "RetryPolicy",
    "TaskOptions",
    "node_count",
    "parse_retry",
    "read_options",
    "retry_reason",
]
