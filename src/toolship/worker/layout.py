"""Where every container path of a task lives on the host — a pure plan, no I/O.

An attempt directory holds ``root/`` (the host stand-in for the container's
``/``), ``logs/`` and ``inputs/`` (content inputs).  Executors' stdout and
stderr are always captured in ``logs/``, outside every mount, where no task
can plant a link; a declared stdout/stderr file is a copy made after the
executor ends.  Writable container
directories (volumes, workdirs, output directories) are mounted from
``root/``; inputs are mounted read-only on top, straight from their source
when it is local (zero-copy).  Inputs' mount points are remembered so that
output globs never pick up (and upload) their empty placeholders.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from toolship.models import FileType, Task, static_dir
from toolship.wildcards import has_wildcard

__all__ = ["AttemptLayout", "inside", "plan_layout", "writable_dirs"]


def inside(path: str, directory: str) -> bool:
    return directory == "/" or path == directory or path.startswith(directory.rstrip("/") + "/")


def writable_dirs(task: Task) -> list[str]:
    """Container directories the executors may write to, outermost only."""
    wanted: set[str] = set(task.volumes or [])
    for ex in task.executors:
        if ex.workdir:
            wanted.add(ex.workdir)
        for stream in (ex.stdout, ex.stderr):
            if stream:
                wanted.add(posixpath.dirname(stream))
    for out in task.outputs or []:
        if has_wildcard(out.path):
            wanted.add(static_dir(out.path))
        elif out.type is FileType.DIRECTORY:
            wanted.add(out.path)
        else:
            wanted.add(posixpath.dirname(out.path))
    chosen: list[str] = []
    for d in sorted(wanted, key=lambda p: (p.count("/"), p)):
        if not any(inside(d, c) for c in chosen):
            chosen.append(d)
    return sorted(chosen)


@dataclass
class AttemptLayout:
    base: Path  # the attempt directory
    writable: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def content_dir(self) -> Path:
        return self.base / "inputs"

    def host(self, container_path: str) -> Path:
        """The host path standing for ``container_path`` (inside ``root``)."""
        return self.root / container_path.lstrip("/")

    def log_file(self, executor: int, stream: str) -> Path:
        return self.logs / f"exec-{executor}.{stream}"  # the names capture_names gives

    def captures(self, executor: int, stdout: str | None, stderr: str | None) -> tuple[Path, Path]:
        """The files that capture an executor's stdout and stderr (both in ``logs/``).

        Both streams declared to one file share one capture, interleaved as a
        terminal shows them.
        """
        out, err = self.capture_names(executor, stdout, stderr)
        return self.logs / out, self.logs / err

    @staticmethod
    def capture_names(executor: int, stdout: str | None, stderr: str | None) -> tuple[str, str]:
        """The names in ``logs/`` of :meth:`captures` (cheap for thousands of executors)."""
        out = f"exec-{executor}.stdout"
        same = stderr is not None and stderr == stdout
        return out, out if same else f"exec-{executor}.stderr"

    def exit_file(self, executor: int) -> Path:
        return self.logs / f"exec-{executor}.exit"

    def rank_exits(self, executor: int) -> Path:
        """The prefix of a multi-node executor's exit files, one per rank (worker/ranks.py)."""
        return self.logs / f"exec-{executor}"

    def covered(self, container_path: str) -> bool:
        """Is this container path inside one of the writable directories?"""
        return any(inside(container_path, d) for d in self.writable)


def plan_layout(task: Task, base: Path) -> AttemptLayout:
    return AttemptLayout(base=base, writable=writable_dirs(task))
