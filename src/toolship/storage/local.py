"""``file://`` URLs and plain absolute paths, limited to configured allowed roots.

Symlinks are resolved before the check, so a link inside an allowed root
cannot point a task at ``/etc/shadow``.  Inputs are mounted in place (no
copy); outputs are written to a temporary name beside the target and renamed,
so a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from toolship.errors import InvalidRequest, StagingError

__all__ = ["LocalStorage"]


class LocalStorage:
    schemes: tuple[str, ...] = ("file",)

    def __init__(self, allowed_roots: Sequence[Path]) -> None:
        self.roots = [Path(r).resolve() for r in allowed_roots]

    def path_of(self, url: str) -> Path:
        """The resolved host path of ``url``, if it lies inside an allowed root."""
        if url.startswith("/"):
            raw = url
        else:
            parts = urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                raise InvalidRequest(
                    f"{url!r}: file:// URLs must name a local path (file:///path), "
                    f"not host {parts.netloc!r}"
                )
            if parts.query or parts.fragment:
                raise InvalidRequest(f"{url!r}: file:// URLs take no query or fragment")
            raw = unquote(parts.path)
        if not raw.startswith("/") or "\x00" in raw:
            raise InvalidRequest(f"{url!r}: file URLs need an absolute path")
        resolved = Path(raw).resolve()
        if not any(resolved == r or resolved.is_relative_to(r) for r in self.roots):
            roots = ", ".join(str(r) for r in self.roots)
            raise InvalidRequest(
                f"{url!r} resolves to {resolved}, which is outside the allowed roots ({roots}); "
                "move the data under an allowed root or ask the operator to add one "
                "(storage.allowed_roots)"
            )
        return resolved

    def check_input(self, url: str, kind: str) -> None:
        self.path_of(url)

    def check_output(self, url: str) -> None:
        self.path_of(url)

    def local_source(self, url: str) -> Path | None:
        return self.path_of(url)

    def fetch(self, url: str, dest: Path, kind: str) -> None:
        src = self._existing(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, dest)

    def _existing(self, url: str) -> Path:
        src = self.path_of(url)
        if not src.exists():
            raise StagingError(f"input {url} does not exist")
        return src

    def check_exists(self, url: str, kind: str) -> Path:
        src = self._existing(url)
        if kind == "DIRECTORY" and not src.is_dir():
            raise StagingError(f"input {url} is a file, but the task declares a DIRECTORY")
        if kind == "FILE" and src.is_dir():
            raise StagingError(f"input {url} is a directory, but the task declares a FILE")
        return src

    def deliver(self, src: Path, url: str) -> None:
        dest = self.path_of(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.toolship-partial-{os.getpid()}"
        try:
            shutil.copyfile(src, tmp)
            tmp.replace(dest)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StagingError(f"cannot write {url}: {exc.strerror or exc}") from exc

    def prefixes(self) -> list[str]:
        return [f"file://{r}/" if str(r) != "/" else "file:///" for r in self.roots]
