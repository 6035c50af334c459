"""What one engine has done since it started, counted for ``/metrics`` (api/metrics.py).

Plain integers the engine adds to on its event loop; the metrics route reads them when
Prometheus scrapes, so the engine knows nothing of Prometheus.  They count this
process's work only: with several replicas, each counts what it did itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from toolship.models import TaskLog
from toolship.records import RuntimeRecord
from toolship.states import FINAL_STATES, TaskState

__all__ = ["Tally"]


def _by_final_state() -> dict[TaskState, int]:
    # Every final state from the start: the dict never grows, so a scrape in another
    # thread can iterate it while the loop adds, and each series exists from zero.
    return dict.fromkeys(sorted(FINAL_STATES), 0)


@dataclass
class Tally:
    started: int = 0  # attempts started (a retry is another; a resumed one is not)
    ended: dict[TaskState, int] = field(default_factory=_by_final_state)  # final states written
    bytes_in: int = 0  # copied by stage-in (an input mounted in place is not copied)
    bytes_out: int = 0  # delivered by stage-out

    def task_ended(self, state: TaskState) -> None:
        self.ended[state] += 1

    def attempt_ended(self, attempt: TaskLog, runtime: RuntimeRecord) -> None:
        """The bytes an ended attempt moved: its stage-in's, and its delivered outputs'."""
        self.bytes_in += runtime.staged_bytes or 0
        # A remote worker's report is a document: a size that is not a number counts 0.
        self.bytes_out += sum(int(o.size_bytes) for o in attempt.outputs if o.size_bytes.isdigit())
