"""OSV advisories: reading records (one JSON file, a list, or OSV's ``all.zip``) and
deciding whether a package version is affected.

An OSV record names, per affected package, its ecosystem (``Debian:12``, ``PyPI``, …)
and name (or a purl), then the affected versions: a list (``versions``) and ranges of
``introduced`` / ``fixed`` / ``last_affected`` events, compared as the ecosystem
compares versions (``ECOSYSTEM``) or as semantic versions (``SEMVER``).  ``GIT``
ranges name commits, which an SBOM does not carry: they are not evaluated.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from toolship.supply.purls import Component, Constraint, component_of, normal_name, version_in

__all__ = [
    "MAX_RECORD_BYTES",
    "Advisory",
    "Affected",
    "affected_by",
    "ecosystem_purl",
    "parse_record",
    "read_records",
]

MAX_RECORD_BYTES = 16 * 1024 * 1024  # one OSV record; the largest real ones are ~1 MB

# OSV ecosystem (the part before ":") → purl type and namespace.
_ECOSYSTEMS: dict[str, tuple[str, str]] = {
    "Debian": ("deb", "debian"),
    "Ubuntu": ("deb", "ubuntu"),
    "Alpine": ("apk", "alpine"),
    "PyPI": ("pypi", ""),
    "npm": ("npm", ""),
    "crates.io": ("cargo", ""),
    "Go": ("golang", ""),
    "Maven": ("maven", ""),
    "RubyGems": ("gem", ""),
    "NuGet": ("nuget", ""),
    "Packagist": ("composer", ""),
    "Hex": ("hex", ""),
    "Pub": ("pub", ""),
    "Rocky Linux": ("rpm", "rocky-linux"),
    "AlmaLinux": ("rpm", "almalinux"),
    "Red Hat": ("rpm", "redhat"),
    "openSUSE": ("rpm", "opensuse"),
    "SUSE": ("rpm", "suse"),
}


@dataclass(frozen=True, slots=True)
class Affected:
    ecosystem: str  # as OSV writes it: "Debian:12", "PyPI"
    package: str  # the name, normalised as the purl type says
    purl_type: str  # "" for an ecosystem toolship does not know
    namespace: str
    release: str  # "12" of "Debian:12"; "" when the record names none
    versions: tuple[str, ...]
    ranges: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (type, ((event, version), …))


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    modified: str
    summary: str
    aliases: tuple[str, ...]
    affected: tuple[Affected, ...]
    doc: Mapping[str, Any]


def ecosystem_purl(ecosystem: str) -> tuple[str, str, str]:
    """``Debian:12`` → (``deb``, ``debian``, ``12``); an unknown ecosystem → ("", "", "")."""
    name, _, release = ecosystem.partition(":")
    purl_type, namespace = _ECOSYSTEMS.get(name, ("", ""))
    return purl_type, namespace, release if purl_type else ""


def _affected(entry: Mapping[str, Any], where: str) -> Affected:
    package = entry.get("package")
    if not isinstance(package, Mapping):
        raise ValueError(f"{where}: an affected entry without a package")
    ecosystem = str(package.get("ecosystem") or "")
    purl_type, namespace, release = ecosystem_purl(ecosystem)
    name = str(package.get("name") or "")
    purl = package.get("purl")
    if isinstance(purl, str) and purl:
        try:
            component = component_of(purl)
        except ValueError:
            component = None
        if component is not None:
            purl_type, namespace = component.type, component.namespace
            name = name or component.name
    if not name or not ecosystem:
        raise ValueError(f"{where}: an affected package needs an ecosystem and a name")
    ranges = []
    for r in entry.get("ranges") or []:
        if not isinstance(r, Mapping):
            raise ValueError(f"{where}: a range is not an object")
        events = tuple(
            (str(kind), str(version))
            for event in r.get("events") or []
            if isinstance(event, Mapping)
            for kind, version in event.items()
        )
        ranges.append((str(r.get("type") or ""), events))
    versions = tuple(str(v) for v in entry.get("versions") or [])
    return Affected(
        ecosystem=ecosystem,
        package=normal_name(purl_type, name),
        purl_type=purl_type,
        namespace=namespace,
        release=release,
        versions=versions,
        ranges=tuple(ranges),
    )


def parse_record(doc: Any, where: str = "record") -> Advisory:
    """One OSV record; what makes it unusable is a ValueError naming ``where`` and the field."""
    if not isinstance(doc, Mapping):
        raise ValueError(f"{where}: an OSV record is a JSON object")
    advisory_id = doc.get("id")
    if not isinstance(advisory_id, str) or not advisory_id:
        raise ValueError(f"{where}: an OSV record needs an 'id'")
    affected = doc.get("affected", [])
    if not isinstance(affected, list):
        raise ValueError(f"{where} ({advisory_id}): 'affected' is not a list")
    return Advisory(
        id=advisory_id,
        modified=str(doc.get("modified") or ""),
        summary=str(doc.get("summary") or doc.get("details") or "")[:300],
        aliases=tuple(str(a) for a in doc.get("aliases") or []),
        affected=tuple(_affected(e, f"{where} ({advisory_id})") for e in affected),
        doc=doc,
    )


def _json_records(data: bytes, where: str) -> Iterator[Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: not JSON ({exc})") from None
    if isinstance(doc, list):
        yield from doc
    else:
        yield doc


def read_records(data: bytes, name: str = "upload") -> Iterator[tuple[str, Any]]:
    """(where, JSON document) per record: a zip of ``*.json`` files (OSV's ``all.zip``),
    or one JSON file holding a record or a list of records.

    A zip member larger than :data:`MAX_RECORD_BYTES` is refused before it is read
    (a zip bomb stops there).
    """
    if data[:4] == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{name}: not a readable zip file ({exc})") from None
        with archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                where = f"{name}:{info.filename}"
                if info.file_size > MAX_RECORD_BYTES:
                    raise ValueError(
                        f"{where}: {info.file_size} bytes, more than an OSV record "
                        f"may hold ({MAX_RECORD_BYTES}); is this an OSV all.zip?"
                    )
                with archive.open(info) as member:
                    raw = member.read(MAX_RECORD_BYTES + 1)
                for doc in _json_records(raw, where):
                    yield where, doc
        return
    for doc in _json_records(data, name):
        yield name, doc


def _release(component: Component) -> str:
    """``12`` of a Debian component's ``distro=debian-12`` qualifier ("" when none)."""
    _, found, rest = component.purl.partition("distro=")
    if not found:
        return ""
    return rest.partition("&")[0].partition("-")[2]


def _in_range(purl_type: str, version: str, events: tuple[tuple[str, str], ...]) -> list[str]:
    """The range's ``fixed`` versions above ``version`` when it is affected (["" when no
    fix is known]), else []."""
    affected, fixed = False, list[str]()
    introduced = [v for kind, v in events if kind == "introduced"]
    for start in introduced:
        if start != "0" and not version_in(purl_type, version, Constraint(">=", start)):
            continue
        ends = [
            (kind, v)
            for kind, v in events
            if kind in ("fixed", "last_affected")
            and (start == "0" or version_in(purl_type, v, Constraint(">", start)))
        ]
        if not any(
            version_in(purl_type, version, Constraint(">=" if kind == "fixed" else ">", v))
            for kind, v in ends
        ):
            affected = True
            fixes = [v for kind, v in ends if kind == "fixed"]
            # The first fix after this start (a later one closes a later interval).
            fixed.extend(
                v
                for v in fixes
                if not any(version_in(purl_type, w, Constraint("<", v)) for w in fixes)
            )
    if not affected:
        return []
    return sorted(set(fixed)) or [""]


def affected_by(advisory: Affected, component: Component, source: str = "") -> list[str] | None:
    """None when ``component`` is not affected; else the fixed versions ([] when none known).

    ``source`` is a Debian binary package's source package: Debian advisories name those.
    """
    if not advisory.purl_type or component.type != advisory.purl_type:
        return None
    if advisory.package not in (component.name, source):
        return None
    if advisory.namespace and component.namespace and advisory.namespace != component.namespace:
        return None
    release = _release(component)
    if advisory.release and release and advisory.release != release:
        return None
    fixed: list[str] = []
    hit = component.version in advisory.versions
    for kind, events in advisory.ranges:
        if kind not in ("ECOSYSTEM", "SEMVER"):
            continue
        found = _in_range(component.type, component.version, events)
        if found:
            hit = True
            fixed.extend(v for v in found if v)
    return sorted(set(fixed)) if hit else None
