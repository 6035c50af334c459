"""An executor's standard streams on the host side: stdin opened, stdout and stderr captured.

stdout and stderr always go to the server's own capture files in the attempt's
``logs/``, outside every mount, where no task can plant anything.  A declared
stdout/stderr path gets a copy once the executor has ended, written through
:mod:`~toolship.worker.taskfs` (a link, FIFO or device the task left there is
refused by name, never written through), and so does each rank's capture
(``<path>.rank<r>``).  stdin is opened through taskfs as well and handed to the
executor as an open file: the host never opens a task's path by name.
"""

from __future__ import annotations

from pathlib import Path

from toolship.errors import StagingError
from toolship.models import Executor
from toolship.runtime import Mount
from toolship.worker import taskfs
from toolship.worker.layout import AttemptLayout

__all__ = ["finish_streams", "open_stdin"]


def open_stdin(layout: AttemptLayout, container_path: str, mounts: list[Mount]) -> int:
    """An open fd of the regular file behind ``container_path`` (through the innermost mount).

    Within the attempt's directory the path is walked from there; a mount's source
    elsewhere (an input pinned in place) is walked from ``/``: no component may be
    a link either way.
    """
    host = layout.host(container_path)
    for m in sorted(mounts, key=lambda m: len(m.container), reverse=True):
        if m.container == container_path:
            host = m.host
            break
        if container_path.startswith(m.container.rstrip("/") + "/"):
            host = m.host / container_path[len(m.container) :].lstrip("/")
            break
    base = layout.base if host.is_relative_to(layout.base) else Path("/")
    try:
        return taskfs.open_file(base, str(host.relative_to(base)), "stdin", container_path)
    except FileNotFoundError:
        raise StagingError(
            f"stdin file {container_path} does not exist when the executor starts; "
            "declare it as an input or create it in an earlier executor"
        ) from None


def finish_streams(
    layout: AttemptLayout,
    index: int,
    ex: Executor,
    ranks: int,
    tail_bytes: int,
    owner: tuple[int, int] | None = None,
) -> tuple[str, str, str | None]:
    """After executor ``index``: (stdout tail, stderr tail, why a declared copy failed).

    The tails (for the task record) come from the captures; the copies go to the
    declared paths, one per distinct path, with each rank's beside it, owned by
    ``owner`` (the task's user) when the server runs as root.
    """
    stdout, stderr = layout.captures(index, ex.stdout, ex.stderr)
    tails = (_tail(stdout, tail_bytes), _tail(stderr, tail_bytes))
    declared = {
        path: capture for path, capture in ((ex.stdout, stdout), (ex.stderr, stderr)) if path
    }
    try:
        for path, capture in declared.items():
            role = "stdout" if path == ex.stdout else "stderr"
            _copy(layout, capture, path, role, owner)
            for rank in range(1, ranks):
                rank_capture = capture.with_name(f"{capture.name}.rank{rank}")
                if rank_capture.exists():  # a rank that never started wrote none
                    rank_path, rank_role = f"{path}.rank{rank}", f"rank {rank}'s {role}"
                    _copy(layout, rank_capture, rank_path, rank_role, owner)
    except taskfs.TaskPathError as exc:
        return (*tails, str(exc))
    return (*tails, None)


def _copy(
    layout: AttemptLayout,
    capture: Path,
    container_path: str,
    role: str,
    owner: tuple[int, int] | None,
) -> None:
    taskfs.replace_file(layout.root, container_path, capture, f"{role} file", container_path, owner)


def _tail(capture: Path, limit: int) -> str:
    return taskfs.read_tail(capture, limit).decode("utf-8", errors="replace")
