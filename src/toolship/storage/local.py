"""``file://`` URLs and plain absolute paths, limited to configured allowed roots.

Symlinks are resolved before the check, so a link inside an allowed root
cannot point a task at ``/etc/shadow``.  Inputs are mounted in place (no
copy) unless a copy is asked for; outputs are written to a temporary name
beside the target and renamed, so a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from toolship.errors import InvalidRequest, StagingError
from toolship.storage.base import StageContext, split_pattern
from toolship.storage.transfer import FileRecord, copy_stream, sha256_file, with_retries

__all__ = ["LocalStorage", "partial_name"]

PARALLEL_HASH_MIN = 8 * 1024 * 1024


def partial_name(dest: Path) -> Path:
    """A temporary name beside ``dest``, unique to this writer (process and thread)."""
    return dest.parent / f".{dest.name}.toolship-partial-{os.getpid()}-{threading.get_ident()}"


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

    def fetch(self, url: str, dest: Path, kind: str, ctx: StageContext) -> list[FileRecord]:
        src = self.path_of(url)
        if not src.exists():
            raise StagingError(f"input {url} does not exist")
        if src.is_dir():
            files = sorted(p for p in src.rglob("*") if p.is_file() and self._inside(p))
            jobs = [ctx.pool.submit(self._copy, f, dest / f.relative_to(src), ctx) for f in files]
            dest.mkdir(parents=True, exist_ok=True)
            records = []
            for f, job in zip(files, jobs, strict=True):
                rel = f.relative_to(src).as_posix()
                size, sha = job.result()
                records.append(FileRecord(url=f"file://{f}", path=rel, size=size, sha256=sha))
            return records
        size, sha = self._copy(src, dest, ctx)
        return [FileRecord(url=url, path="", size=size, sha256=sha)]

    def _inside(self, path: Path) -> bool:
        """A file under a directory input whose real location is still in an allowed root."""
        real = path.resolve()
        return any(real == r or real.is_relative_to(r) for r in self.roots)

    def _copy(self, src: Path, dest: Path, ctx: StageContext) -> tuple[int, str]:
        dest.parent.mkdir(parents=True, exist_ok=True)

        def attempt() -> tuple[int, str]:
            if src.stat().st_size < PARALLEL_HASH_MIN:
                with src.open("rb") as fin, dest.open("wb") as fout:
                    digest = copy_stream(fin, fout)
                return digest.size, digest.sha256
            # Big files: the kernel copies (as cp does) while a thread hashes the same bytes.
            hashing = ctx.pool.submit(sha256_file, src)
            shutil.copyfile(src, dest)
            return dest.stat().st_size, hashing.result()

        size, sha = with_retries(attempt, f"copy {src}", ctx.attempts)
        ctx.progress.add(size)
        return size, sha

    def deliver(self, src: Path, url: str, ctx: StageContext) -> FileRecord:
        dest = self.path_of(url)
        tmp = partial_name(dest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with src.open("rb") as fin, tmp.open("wb") as fout:
                digest = copy_stream(fin, fout)
            tmp.replace(dest)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StagingError(f"cannot write {url}: {exc.strerror or exc}") from exc
        ctx.progress.add(digest.size)
        return FileRecord(url=url, path="", size=digest.size, sha256=digest.sha256)

    def glob(self, pattern: str, credentials: Mapping[str, str]) -> list[str]:
        raw = pattern[len("file://") :] if pattern.startswith("file://") else pattern
        folder, rest = split_pattern(raw)
        base = self.path_of("file://" + (folder or "/"))
        if not rest or rest.startswith("/") or ".." in rest.split("/"):
            raise InvalidRequest(f"{pattern!r}: give a pattern below a folder, e.g. /data/*.csv")
        return sorted(f"file://{p}" for p in base.glob(rest) if p.is_file() and self._inside(p))

    def prefixes(self) -> list[str]:
        return [f"file://{r}/" if str(r) != "/" else "file:///" for r in self.roots]
