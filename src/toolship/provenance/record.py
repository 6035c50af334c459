"""The provenance record of a stored task (:class:`toolship.supply.record.Provenance`).

Everything comes from what the attempts recorded — the images by digest
(:func:`toolship.supply.images.image_uses`), the ``sha256:{path}`` of every staged
input and delivered output, the executors' times and exit codes — beside the task as
submitted; nothing is looked up again, so the record says what ran, not what is there
now.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from toolship.db import TaskRow
from toolship.models import TaskLog
from toolship.supply.hashes import file_hashes, input_hashes
from toolship.supply.images import ImageUse, image_uses
from toolship.supply.record import (
    AttemptRecord,
    ExecutorRecord,
    FileRecord,
    Provenance,
    SbomRef,
)

__all__ = ["SbomLookup", "provenance_of"]

SbomLookup = Callable[[str], SbomRef | None]  # digest → where its SBOM is, when stored


def _no_sbom(_digest: str) -> SbomRef | None:
    return None


def provenance_of(row: TaskRow, sboms: SbomLookup = _no_sbom) -> Provenance:
    spec = row.spec
    return Provenance(
        id=row.id,
        name=row.name,
        description=spec.get("description"),
        state=row.state.value,
        creation_time=row.creation_time,
        batch_id=row.batch_id,
        tags=spec.get("tags") or {},
        resources={**(spec.get("resources") or {}), "cpu_cores": row.cpus},
        attempts=[_attempt(n, spec, log, sboms) for n, log in enumerate(row.logs, start=1)],
    )


def _attempt(
    number: int, spec: Mapping[str, Any], log: TaskLog, sboms: SbomLookup
) -> AttemptRecord:
    meta = log.metadata or {}
    hashes = file_hashes(meta)
    inputs = {**hashes, **input_hashes(meta)}  # an input's own hash, where an output took it
    images = {u.executor: u for u in image_uses(meta)}
    executors = [
        _executor(i, ex, log, images.get(i), sboms)
        for i, ex in enumerate(spec.get("executors", []))
    ]
    return AttemptRecord(
        attempt=number,
        start_time=log.start_time,
        end_time=log.end_time,
        executors=executors,
        inputs=[_input(inp, inputs) for inp in spec.get("inputs") or []],
        outputs=[
            FileRecord(path=o.path, url=o.url, size=int(o.size_bytes), sha256=hashes.get(o.path))
            for o in log.outputs
        ],
        system_logs=log.system_logs or [],
    )


def _executor(
    index: int,
    ex: Mapping[str, Any],
    log: TaskLog,
    use: ImageUse | None,
    sboms: SbomLookup,
) -> ExecutorRecord:
    ran = log.logs[index] if index < len(log.logs) else None
    return ExecutorRecord(
        index=index,
        image=ex["image"],
        digest=use.digest or None if use else None,
        image_id=use.image_id or None if use else None,
        command=ex["command"],
        workdir=ex.get("workdir"),
        env=ex.get("env") or {},
        stdin=ex.get("stdin"),
        stdout=ex.get("stdout"),
        stderr=ex.get("stderr"),
        start_time=ran.start_time if ran else None,
        end_time=ran.end_time if ran else None,
        exit_code=ran.exit_code if ran and ran.end_time else None,
        sbom=sboms(use.digest) if use and use.digest else None,
    )


def _input(inp: Mapping[str, Any], hashes: Mapping[str, str]) -> FileRecord:
    path: str = inp["path"]
    kind = inp.get("type", "FILE")
    url = inp.get("url")
    files = []
    if kind == "DIRECTORY":
        prefix = path.rstrip("/") + "/"
        base = (url or "").rstrip("/") + "/"
        files = [
            FileRecord(path=p, url=base + p.removeprefix(prefix) if url else None, sha256=h)
            for p, h in sorted(hashes.items())
            if p.startswith(prefix)
        ]
    return FileRecord(
        path=path,
        url=url,
        content=inp.get("content"),
        type=kind,
        name=inp.get("name"),
        sha256=hashes.get(path) if kind != "DIRECTORY" else None,
        files=files,
    )
