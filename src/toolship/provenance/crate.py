"""Process Run Crates (RO-Crate 1.1, Workflow Run RO-Crate's Process Run Crate 0.5)
written from provenance records.

One ``CreateAction`` per executor of a task's last attempt (the one whose outputs
count): its ``instrument`` the tool (a ``SoftwareApplication`` named after the image),
its ``containerImage`` the image that ran (``ContainerImage`` with the manifest
``sha256``), ``object`` the inputs and ``result`` the outputs as ``File`` entities (their
URL as ``@id``, with ``sha256`` and ``contentSize``), the command as ``description``,
start and end, ``actionStatus`` and the environment as ``PropertyValue``s.  Inline
inputs and stored SBOMs travel inside the crate as files.  A batch's crate holds every
member's actions.

The profile's own terms (``containerImage``, ``environment``, …) are defined inline in
the ``@context``, so reading the crate fetches nothing but RO-Crate's context.
"""

from __future__ import annotations

import io
import mimetypes
import shlex
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rocrate.model.contextentity import ContextEntity
from rocrate.model.entity import Entity
from rocrate.rocrate import ROCrate

from toolship.supply.images import ImageUse
from toolship.supply.record import ExecutorRecord, FileRecord, Provenance

__all__ = ["NO_LICENSE", "PROFILE", "SbomText", "crate_of", "crate_zip", "write_crate"]

PROFILE = "https://w3id.org/ro/wfrun/process/0.5"
_WFRUN = "https://w3id.org/ro/terms/workflow-run#"
_TERMS = ("ContainerImage", "DockerImage", "containerImage", "environment", "registry", "tag")
_SCHEMA = "http://schema.org/"
NO_LICENSE = (
    "No license was given for this record (toolship provenance --license URL sets one); "
    "the files it describes keep their owners' terms of use."
)
_CYCLONEDX = "application/vnd.cyclonedx+json"

SbomText = Callable[[str], str | None]  # digest → its CycloneDX 1.6 JSON, when stored


def _none(_digest: str) -> str | None:
    return None


def crate_of(
    records: Sequence[Provenance],
    *,
    name: str,
    description: str,
    license: str | None = None,
    sboms: SbomText = _none,
) -> ROCrate:
    """The crate of ``records`` (one task, or every member of a batch).

    ``license``: the crate's license as a URL (``https://spdx.org/licenses/CC-BY-4.0``);
    RO-Crate requires one, and without it the crate says in words that none was given.
    """
    crate = ROCrate(version="1.1")
    crate.metadata.extra_terms = {term: _WFRUN + term for term in _TERMS}
    profile = crate.add(
        ContextEntity(
            crate,
            PROFILE,
            properties={"@type": "CreativeWork", "name": "Process Run Crate", "version": "0.5"},
        )
    )
    crate.root_dataset["conformsTo"] = profile
    crate.name = name
    crate.description = description
    if license and license.startswith(("http://", "https://")):
        crate.license = crate.add(
            ContextEntity(crate, license, properties={"@type": "CreativeWork", "name": license})
        )
    else:
        crate.license = license or NO_LICENSE
    writer = _Writer(crate, sboms)
    actions = [a for record in records for a in writer.actions(record)]
    crate.root_dataset["mentions"] = _one(actions)
    return crate


def write_crate(crate: ROCrate, dest: Path) -> Path:
    """The crate as a folder, or as a zip when ``dest`` ends in ``.zip``."""
    if dest.suffix == ".zip":
        crate.write_zip(dest)
    else:
        crate.write(dest)
    return dest


def crate_zip(crate: ROCrate) -> bytes:
    with tempfile.TemporaryDirectory(prefix="toolship-crate-") as tmp:
        return write_crate(crate, Path(tmp) / "crate.zip").read_bytes()


def _one(items: list[Entity]) -> Entity | list[Entity] | None:
    """RO-Crate 1.1 wants a single value as such, not a one-element list."""
    if not items:
        return None
    return items[0] if len(items) == 1 else items


def _time(stamp: str | None) -> str | None:
    """The profile's ISO 8601 form: milliseconds and a ``+00:00`` offset (not ``Z``)."""
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp).astimezone(UTC)
    except ValueError:  # not a time (a hand-written log): left out rather than fail the crate
        return None
    return when.isoformat(timespec="milliseconds")


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


class _Writer:
    """Adds a record's entities to one crate; an entity two tasks share is added once."""

    def __init__(self, crate: ROCrate, sboms: SbomText) -> None:
        self.crate = crate
        self.sboms = sboms
        self.entities: dict[str, Entity] = {}

    def actions(self, record: Provenance) -> list[Entity]:
        attempt = record.last
        if attempt is None:  # never started: nothing ran, nothing to say
            return []
        inputs = [e for f in attempt.inputs if (e := self._input(record.id, f)) is not None]
        outputs = [self._file(f) for f in attempt.outputs if f.url]
        label = record.name or record.id
        return [
            self._action(record, attempt.attempt, ex, label, inputs, outputs)
            for ex in attempt.executors
        ]

    def _action(
        self,
        record: Provenance,
        attempt: int,
        ex: ExecutorRecord,
        label: str,
        inputs: list[Entity],
        outputs: list[Entity],
    ) -> Entity:
        ok = ex.exit_code == 0
        props: dict[str, Any] = {
            "@type": "CreateAction",
            "name": f"{label}: executor {ex.index}",
            "description": shlex.join(ex.command) + (f" (in {ex.workdir})" if ex.workdir else ""),
            "instrument": self._tool(ex),
            "containerImage": self._image(ex),
            "object": _one(inputs),
            "result": _one(outputs),
            "startTime": _time(ex.start_time),
            "endTime": _time(ex.end_time),
            # the profile's form: the IRI as a string
            "actionStatus": _SCHEMA + ("CompletedActionStatus" if ok else "FailedActionStatus"),
            "identifier": f"{record.id}/{attempt}/{ex.index}",
        }
        if not ok:
            props["error"] = (
                f"exit code {ex.exit_code}" if ex.exit_code is not None else "did not finish"
            )
        env = [
            self.crate.add(
                ContextEntity(
                    self.crate,
                    f"#env-{record.id}-{ex.index}-{key}",
                    properties={"@type": "PropertyValue", "name": key, "value": value},
                )
            )
            for key, value in sorted(ex.env.items())
        ]
        props["environment"] = _one(env)
        return self.crate.add(
            ContextEntity(
                self.crate,
                f"#run-{record.id}-{attempt}-{ex.index}",
                properties={k: v for k, v in props.items() if v is not None},
            )
        )

    def _tool(self, ex: ExecutorRecord) -> Entity:
        use = ImageUse(ex.index, ex.image, ex.digest or "")
        tag = use.image.partition("@")[0].rpartition("/")[2].partition(":")[2]
        key = f"#tool-{_hex(ex.digest) if ex.digest else ex.image}"
        return self._once(
            key,
            {
                "@type": "SoftwareApplication",
                "name": use.repository,
                "softwareVersion": tag or ex.digest or "latest",
            },
        )

    def _image(self, ex: ExecutorRecord) -> Entity:
        use = ImageUse(ex.index, ex.image, ex.digest or "", ex.image_id or "")
        head, _, rest = use.repository.partition("/")
        hosted = bool(rest) and ("." in head or ":" in head or head == "localhost")
        tag = use.image.partition("@")[0].rpartition("/")[2].partition(":")[2]
        props: dict[str, Any] = {
            "@type": "ContainerImage",
            "additionalType": {"@id": _WFRUN + "DockerImage"},
            "registry": head if hosted else "docker.io",
            "name": rest if hosted else use.repository,
            "tag": tag or None,
            "sha256": _hex(ex.digest) if ex.digest else None,
            "identifier": ex.image_id,
            "alternateName": ex.image,
        }
        key = f"#image-{_hex(ex.digest) if ex.digest else ex.image}"
        image = self._once(key, {k: v for k, v in props.items() if v is not None})
        if ex.digest and "subjectOf" not in image:
            sbom = self._sbom(ex.digest, image)
            if sbom is not None:
                image["subjectOf"] = sbom
        return image

    def _sbom(self, digest: str, image: Entity) -> Entity | None:
        text = self.sboms(digest)
        if text is None:
            return None
        return self.crate.add_file(
            source=io.BytesIO(text.encode()),
            dest_path=f"sboms/{_hex(digest)}.cdx.json",
            properties={
                "name": f"SBOM of {digest} (CycloneDX 1.6)",
                "encodingFormat": _CYCLONEDX,
                "about": image,
            },
        )

    def _input(self, task_id: str, f: FileRecord) -> Entity | None:
        if f.content is not None:
            key = f"content/{task_id}/{f.path.lstrip('/')}"
            if key not in self.entities:
                self.entities[key] = self.crate.add_file(
                    source=io.BytesIO(f.content.encode()),
                    dest_path=key,
                    properties=self._file_props(f),
                )
            return self.entities[key]
        if not f.url:
            return None
        if f.type != "DIRECTORY":
            return self._file(f)
        if f.url not in self.entities:
            parts = [self._file(part) for part in f.files if part.url]
            self.entities[f.url] = self.crate.add_dataset(
                source=f.url,
                fetch_remote=False,
                validate_url=False,
                properties={"name": f.name or f.path, "hasPart": _one(parts)},
            )
        return self.entities[f.url]

    def _file(self, f: FileRecord) -> Entity:
        assert f.url is not None
        if f.url not in self.entities:
            self.entities[f.url] = self.crate.add_file(
                source=f.url,
                fetch_remote=False,
                validate_url=False,
                properties=self._file_props(f),
            )
        return self.entities[f.url]

    @staticmethod
    def _file_props(f: FileRecord) -> dict[str, Any]:
        kind, _ = mimetypes.guess_type(f.path)
        props: dict[str, Any] = {
            "name": f.name or f.path,
            "alternateName": f.path,
            "encodingFormat": kind or "application/octet-stream",
            "sha256": f.sha256,
            "contentSize": None if f.size is None else str(f.size),
        }
        return {k: v for k, v in props.items() if v is not None}

    def _once(self, key: str, props: dict[str, Any]) -> Entity:
        if key not in self.entities:
            self.entities[key] = self.crate.add(ContextEntity(self.crate, key, properties=props))
        return self.entities[key]
