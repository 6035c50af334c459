"""A full disk, said as such: "disk full in FOLDER (… free of …)", with the fix.

An attempt that runs out of room fails deep inside a download, a copy or a mkdir with
errno ENOSPC ("[Errno 28] No space left on device"), which names neither the file
system nor what to do about it.  The worker puts this in front of such a failure.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from toolship.units import format_bytes

__all__ = ["explain"]


def _no_space(exc: BaseException | None) -> OSError | None:
    """The ENOSPC among ``exc`` and its causes (a transfer wraps the OSError it hit)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def explain(exc: BaseException, work_dir: Path) -> str | None:
    """``exc`` as a system log starting "disk full in …" when it ran out of room, else None.

    The folder is the one the failed write named, else the work directory (where an
    attempt's inputs, captures and outputs are written).
    """
    full = _no_space(exc)
    if full is None:
        return None
    folder = work_dir
    if full.filename:
        written = Path(os.fsdecode(full.filename))
        if not written.is_relative_to(work_dir):
            folder = written.parent
    try:
        usage = shutil.disk_usage(folder)
        room = f" ({format_bytes(usage.free)} free of {format_bytes(usage.total)})"
    except OSError:
        room = ""
    what = "toolship's work directory" if folder == work_dir else "that folder"
    return (
        f"disk full in {folder}{room}: {exc}. Free space there, or give {what} a larger file system"
    )
