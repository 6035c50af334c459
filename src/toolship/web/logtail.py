"""Parts of a task's stdout and stderr for the web UI: the tail, the part before, what follows.

A capture may be a gigabyte: the page shows its last :data:`TAIL` bytes, "Load
earlier" reads the :data:`TAIL` bytes before a byte offset, and the live stream
reads from the offset the page stopped at.  Every read goes through
:mod:`toolship.worker.taskfs` (the captures lie in the attempt's ``logs/``, which
only the server writes; no link is followed) and is bounded.  Where no capture is
on this server's disk (a remote worker, a backend that keeps none), the text the
attempt's TES executor log carries is shown instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from toolship.db.store import TaskRow
from toolship.worker import taskfs
from toolship.worker.layout import AttemptLayout

__all__ = [
    "STREAMS",
    "TAIL",
    "LogPart",
    "capture",
    "current_executor",
    "earlier",
    "follow_query",
    "read",
    "tails",
]

TAIL = 64 * 1024
STREAMS = ("stdout", "stderr")
_ROLE = "log file"


@dataclass(frozen=True)
class LogPart:
    """Some text of one stream: the bytes [start, end) of its capture."""

    stream: str
    text: str
    start: int  # 0: nothing earlier
    end: int  # where following goes on
    captured: bool  # read from the capture (False: the TES executor log's copy)


def current_executor(row: TaskRow) -> int:
    """The executor whose logs a page shows first: the one running, or the last that ran."""
    count = max(len(row.spec.get("executors") or []), 1)
    rt = row.runtime
    for index in (rt.launching, rt.executor):
        if index is not None and not _over(row):
            return min(index, count - 1)
    ran = len(row.logs[-1].logs) if row.logs else 0
    return min(max(ran - 1, 0), count - 1)


def _over(row: TaskRow) -> bool:
    return row.runtime.phase in ("outputs", "done")


def capture(row: TaskRow, executor: int, stream: str) -> tuple[Path, str] | None:
    """The latest attempt's ``logs/`` folder and the capture's name in it (None: none here)."""
    base = row.runtime.attempt_dir
    executors = row.spec.get("executors") or []
    if base is None or not 0 <= executor < len(executors):
        return None
    ex = executors[executor]
    out, err = AttemptLayout.capture_names(executor, ex.get("stdout"), ex.get("stderr"))
    return AttemptLayout(base=Path(base)).logs, out if stream == "stdout" else err


def read(logs: Path, name: str, offset: int, size: int) -> bytes:
    """At most ``size`` bytes of the capture from ``offset`` (b"": none, or not a file)."""
    try:
        return taskfs.read_at(logs / name, offset, size, _ROLE)
    except (taskfs.TaskPathError, NotADirectoryError):
        return b""


def _tail(logs: Path, name: str) -> tuple[int, bytes]:
    try:
        fd = taskfs.open_file(logs, name, _ROLE, str(logs / name))
    except (FileNotFoundError, NotADirectoryError, taskfs.TaskPathError):
        return 0, b""
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - TAIL)
        return start, os.pread(fd, TAIL, start)
    finally:
        os.close(fd)


def _recorded(row: TaskRow, executor: int, stream: str) -> str:
    """The executor's text in the latest attempt's TES log (what a worker kept of it)."""
    if not row.logs or executor >= len(row.logs[-1].logs):
        return ""
    log = row.logs[-1].logs[executor]
    return (log.stdout if stream == "stdout" else log.stderr) or ""


def tails(row: TaskRow, executor: int) -> list[LogPart]:
    """The tail of each stream of ``executor`` (stderr left out when it shares stdout's file)."""
    parts = []
    names: set[str] = set()
    for stream in STREAMS:
        found = capture(row, executor, stream)
        if found is None:
            text = _recorded(row, executor, stream)
            parts.append(LogPart(stream, text, 0, 0, captured=False))
            continue
        logs, name = found
        if name in names:
            continue
        names.add(name)
        start, data = _tail(logs, name)
        parts.append(LogPart(stream, _text(data), start, start + len(data), captured=True))
    return parts


def earlier(row: TaskRow, executor: int, stream: str, before: int) -> LogPart:
    """The :data:`TAIL` bytes before the offset ``before`` of a capture."""
    found = capture(row, executor, stream)
    if found is None:
        return LogPart(stream, "", 0, 0, captured=False)
    start = max(0, before - TAIL)
    data = read(*found, start, before - start)
    return LogPart(stream, _text(data), start, start + len(data), captured=True)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def follow_query(executor: int, parts: list[LogPart]) -> str:
    """The live stream's query: the executor, and where each stream goes on (a capture
    not made yet: from its start)."""
    pairs: list[tuple[str, str | int]] = [("executor", executor)]
    for part in parts:
        pairs += [("stream", part.stream), ("from", part.end)]
    return urlencode(pairs)
