"""Packages by purl: the components of an SBOM, a user's query, and version matching.

A component is kept by its purl's parts (type, namespace, name, version), the way
``audit`` looks it up.  Amazon Inspector writes Debian packages as ``pkg:dpkg/…``; the
purl spec says ``pkg:deb/debian/…``, so both become the latter here.  PyPI names are
normalised as PEP 503 says (``PyYAML`` and ``pyyaml`` are one package).

Versions compare with ``univers``, per purl type: Debian versions for ``deb``, PEP 440
for ``pypi``, and so on.  A Debian query without a revision names the upstream
version: ``openssl@3.0.11`` matches ``3.0.11-1~deb12u2`` (and ``3.0.11+dfsg-1``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packageurl import PackageURL
from univers.version_range import RANGE_CLASS_BY_SCHEMES
from univers.versions import Version

from toolship.errors import InvalidRequest

__all__ = [
    "Component",
    "Constraint",
    "PackageQuery",
    "component_of",
    "components_of",
    "normal_name",
    "parse_query",
    "upstream_name",
    "version_in",
]

# Package types whose SBOM purls name other types.
_TYPES = {"dpkg": "deb"}
_OPERATORS = ("<=", ">=", "!=", "<", ">", "=")
_PEP503 = re.compile(r"[-_.]+")


@dataclass(frozen=True, slots=True)
class Component:
    """One package of an SBOM, as the ``components`` table holds it."""

    type: str
    namespace: str  # "" when the purl has none
    name: str
    version: str  # "" when the purl has none
    purl: str


@dataclass(frozen=True, slots=True)
class Constraint:
    operator: str  # one of <, <=, >, >=, =, !=
    version: str


@dataclass(frozen=True, slots=True)
class PackageQuery:
    """What ``audit`` looks for: a package, and which of its versions."""

    name: str
    type: str | None = None  # None: any type (a bare name)
    namespace: str | None = None
    constraints: tuple[Constraint, ...] = ()  # none: every version

    @property
    def names(self) -> tuple[str, ...]:
        """The names to look up: a bare name is also tried as a PyPI name."""
        if self.type is not None:
            return (self.name,)
        return tuple(dict.fromkeys((self.name, normal_name("pypi", self.name))))

    def matches(self, component: Component) -> bool:
        if self.type is not None and component.type != self.type:
            return False
        if self.namespace is not None and component.namespace != self.namespace:
            return False
        if component.name not in self.names and upstream_name(component) not in self.names:
            return False
        return all(version_in(component.type, component.version, c) for c in self.constraints)


def normal_name(purl_type: str, name: str) -> str:
    if purl_type == "pypi":
        return _PEP503.sub("-", name).lower()
    return name


def _purl(text: str) -> PackageURL:
    try:
        purl = PackageURL.from_string(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a package URL ({exc})") from None
    ptype = _TYPES.get(purl.type, purl.type)
    namespace = purl.namespace
    if ptype == "deb" and not namespace:
        # pkg:dpkg/openssl@…?distro=debian-12 (Inspector): the vendor is the distro's name.
        qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
        distro = str(qualifiers.get("distro", ""))
        namespace = distro.partition("-")[0] or "debian"
    return PackageURL(
        type=ptype,
        namespace=namespace,
        name=normal_name(ptype, purl.name),
        version=purl.version,
        qualifiers=purl.qualifiers,
        subpath=purl.subpath,
    )


def component_of(purl_text: str) -> Component:
    """A component from its purl (normalised: ``pkg:dpkg/…`` becomes ``pkg:deb/debian/…``)."""
    purl = _purl(purl_text)
    return Component(
        type=purl.type,
        namespace=purl.namespace or "",
        name=purl.name,
        version=purl.version or "",
        purl=purl.to_string(),
    )


def components_of(cyclonedx: str | bytes | Mapping[str, Any]) -> list[Component]:
    """Every component with a purl in a CycloneDX document (nested ones too), once each.

    Components without a purl (the operating system, files) are left out: nothing can
    look them up by package.
    """
    doc = json.loads(cyclonedx) if isinstance(cyclonedx, str | bytes) else cyclonedx
    found: dict[str, Component] = {}
    stack = list(doc.get("components") or [])
    while stack:
        item = stack.pop()
        if not isinstance(item, Mapping):
            continue
        stack.extend(item.get("components") or [])
        purl = item.get("purl")
        if not isinstance(purl, str) or not purl:
            continue
        try:
            component = component_of(purl)
        except ValueError:
            continue  # a purl a tool wrote wrong names nothing a user could ask for
        found.setdefault(component.purl, component)
    return sorted(found.values(), key=lambda c: (c.type, c.namespace, c.name, c.version))


def upstream_name(component: Component) -> str:
    """A Debian binary package's source package (syft's ``upstream`` qualifier), or ""."""
    if component.type != "deb" or "upstream=" not in component.purl:
        return ""
    try:
        qualifiers = PackageURL.from_string(component.purl).qualifiers
    except ValueError:
        return ""
    upstream = qualifiers.get("upstream", "") if isinstance(qualifiers, dict) else ""
    return upstream.partition("@")[0].partition(" ")[0]


def _version(purl_type: str, text: str) -> Version:
    scheme = RANGE_CLASS_BY_SCHEMES.get(purl_type) or RANGE_CLASS_BY_SCHEMES["generic"]
    make: Any = scheme.version_class  # univers declares it None on the base class
    version: Version = make(text)
    return version


def _upstream(version: str) -> str:
    """A Debian version without its epoch and revision: ``1:3.0.11-1~deb12u2`` → ``3.0.11``."""
    bare = version.partition(":")[2] if ":" in version else version
    return bare.rpartition("-")[0] if "-" in bare else bare


def version_in(purl_type: str, version: str, constraint: Constraint) -> bool:
    """Does ``version`` (of a package of ``purl_type``) satisfy ``constraint``?

    A version that cannot be read as that type's versions satisfies nothing.
    """
    wanted = constraint.version
    if purl_type == "deb" and constraint.operator in ("=", "!=") and "-" not in wanted:
        upstream = _upstream(version)
        same = upstream == wanted or upstream.startswith(wanted + "+")
        return same if constraint.operator == "=" else not same
    try:
        have, want = _version(purl_type, version), _version(purl_type, wanted)
    except Exception:  # univers raises many kinds for a version it cannot read
        return False
    match constraint.operator:
        case "<":
            return bool(have < want)
        case "<=":
            return bool(have <= want)
        case ">":
            return bool(have > want)
        case ">=":
            return bool(have >= want)
        case "!=":
            return bool(have != want)
        case _:
            return bool(have == want)


def _constraints(spec: str, query: str) -> tuple[Constraint, ...]:
    if not spec:
        return ()
    found = []
    for part in re.split(r"[,|]", spec):
        part = part.strip()
        op = next((o for o in _OPERATORS if part.startswith(o)), "=")
        version = part.removeprefix(op).strip() if part.startswith(op) else part
        if not version or any(o in version for o in "<>=!"):
            raise InvalidRequest(
                f"{query!r}: {part!r} is not a version or a bound; write NAME@VERSION, "
                "NAME@<VERSION or NAME@>=A,<B (bounds: <, <=, >, >=, =, !=)"
            )
        found.append(Constraint(op, version))
    return tuple(found)


def parse_query(text: str) -> PackageQuery:
    """``pkg:deb/debian/openssl@3.0.11``, ``openssl@3.0.11``, ``numpy``, ``numpy@<1.26``.

    The version part of either form may be a range: bounds separated by commas
    (``numpy@>=1.20,<1.26``).
    """
    text = text.strip()
    if not text:
        raise InvalidRequest(
            "an empty package query; name a package: NAME, NAME@VERSION, NAME@<VERSION or a purl"
        )
    if text.startswith("pkg:"):
        base, mark, qualifiers = text.partition("?")
        head, at, spec = base.rpartition("@")
        if not at:
            head, spec = base, ""
        try:
            purl = _purl(head + mark + qualifiers)
        except ValueError as exc:
            raise InvalidRequest(
                f"{exc}; write it as pkg:TYPE/NAMESPACE/NAME@VERSION "
                "(for example pkg:deb/debian/openssl@3.0.11 or pkg:pypi/numpy@1.24.2)"
            ) from None
        spec = spec.partition("#")[0]
        return PackageQuery(
            name=purl.name,
            type=purl.type,
            namespace=purl.namespace or None,
            constraints=_constraints(spec, text),
        )
    name, _, spec = text.partition("@")
    name = name.strip()
    if not name or any(c in name for c in "<>=!/ "):
        raise InvalidRequest(
            f"{text!r} is not a package query; write NAME, NAME@VERSION, NAME@<VERSION "
            "or a purl (pkg:deb/debian/openssl@3.0.11)"
        )
    return PackageQuery(name=name, constraints=_constraints(spec.strip(), text))
