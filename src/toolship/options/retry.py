"""When a failed attempt is tried again — pure.

``retries`` (how many more attempts) and ``retry_on`` (a comma-separated list
of ``system-error``, ``exit:CODE[,CODE…]`` or ``oom``) are backend parameters,
a simpler cousin of AWS Batch's ``evaluateOnExit``.  Without ``retry_on``,
retries cover system errors only (a failed node, a lost job, a failed
transfer), never the tool's own non-zero exit.  A cancelled task is never
retried.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolship.errors import InvalidRequest
from toolship.models import TaskLog
from toolship.states import TaskState

__all__ = ["RetryPolicy", "parse_retry", "retry_reason"]

S = TaskState
OOM_EXIT = 137  # SIGKILL: what the kernel's OOM killer leaves


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 0
    system_error: bool = True
    exit_codes: frozenset[int] = frozenset()
    oom: bool = False


def parse_retry(retries: str | None, retry_on: str | None) -> RetryPolicy:
    if retries is None:
        if retry_on is not None:
            raise InvalidRequest(
                "resources.backend_parameters.retry_on needs retries (how many times to retry)"
            )
        return RetryPolicy()
    try:
        count = int(retries)
    except ValueError:
        raise InvalidRequest(
            f"resources.backend_parameters.retries={retries!r} must be an integer"
        ) from None
    if not 0 <= count <= 100:
        raise InvalidRequest("resources.backend_parameters.retries must be between 0 and 100")
    if retry_on is None:
        return RetryPolicy(retries=count)
    system_error = oom = False
    codes: set[int] = set()
    last_was_exit = False
    for raw in retry_on.split(","):
        word = raw.strip().lower()
        if word in ("system-error", "system_error"):
            system_error, last_was_exit = True, False
        elif word == "oom":
            oom, last_was_exit = True, False
        elif word.startswith("exit:") or (last_was_exit and word.isdigit()):
            text = word.removeprefix("exit:")
            try:
                codes.add(int(text))
            except ValueError:
                raise InvalidRequest(
                    f"resources.backend_parameters.retry_on: {raw.strip()!r} is not an exit "
                    "code; write e.g. exit:75 or exit:75,76"
                ) from None
            last_was_exit = True
        else:
            raise InvalidRequest(
                f"resources.backend_parameters.retry_on: {raw.strip()!r} is not understood; "
                "use system-error, oom, or exit:CODE[,CODE...]"
            )
    return RetryPolicy(count, system_error, frozenset(codes), oom)


def retry_reason(
    policy: RetryPolicy, attempt_number: int, state: TaskState, attempt: TaskLog
) -> str | None:
    """Why this failed attempt is retried, or None when it is final."""
    if attempt_number > policy.retries:
        return None
    if state is S.SYSTEM_ERROR or state is S.PREEMPTED:
        return "a system error" if policy.system_error else None
    if state is not S.EXECUTOR_ERROR:
        return None
    if not attempt.logs:
        return None
    code = attempt.logs[-1].exit_code
    if code in policy.exit_codes:
        return f"exit code {code}"
    if policy.oom and code == OOM_EXIT:
        return "out of memory (exit 137)"
    return None
