"""How inputs and outputs are reached: the ``[storage]`` section of the settings.

Kept apart from :mod:`toolship.config` (which reads files and the environment) so a
compute-node worker can validate the storage settings the server sends it without
loading the settings machinery.
"""

from __future__ import annotations

import ipaddress
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "EGRESS_CLASSES",
    "EMBEDDED_EGRESS",
    "Credential",
    "EgressSettings",
    "S3Settings",
    "StorageSettings",
]

# Address classes that remote inputs and outputs may not reach unless allowed (see
# toolship.storage.egress), by the name an operator writes in storage.egress.allow.
EGRESS_CLASSES: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128"),
    "link-local": ("169.254.0.0/16", "fe80::/10"),  # cloud metadata services live here
    "private": (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT, VPN overlays
        "fc00::/7",
        "fec0::/10",
    ),
    "unspecified": ("0.0.0.0/8", "::/128"),
    "multicast": ("224.0.0.0/4", "ff00::/8"),
    "reserved": ("240.0.0.0/4",),  # and 255.255.255.255
}
# What the embedded server (the CLI's own, for one user) allows when nothing is set: the
# user's own machine and networks, which the user reaches anyway; link-local stays out.
EMBEDDED_EGRESS = ("loopback", "private")
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class S3Settings(BaseModel):
    """How s3:// URLs are reached; credentials come from the usual AWS chain by default."""

    endpoint_url: str = ""  # e.g. http://127.0.0.1:9000 for MinIO; empty = AWS
    region: str = ""
    profile: str = ""  # a named profile from ~/.aws/config of the server's user
    anonymous: bool = False


def _origin(url: str) -> tuple[str, str, int | None, str] | None:
    """(scheme, host, port, path) with webdav(s) as http(s); None for what never matches.

    A path with ``.`` or ``..`` segments (written plainly or percent-encoded) matches no
    prefix: the server at the other end would resolve it elsewhere.
    """
    parts = urlsplit(url)
    scheme = {"webdav": "http", "webdavs": "https"}.get(parts.scheme.lower(), parts.scheme.lower())
    try:
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    if not host or parts.username is not None or parts.password is not None:
        return None
    segments = unquote(parts.path).split("/")
    if any(seg in (".", "..") for seg in segments):
        return None
    if scheme == "s3":
        host, port = parts.netloc, None  # a bucket name, kept as written
    else:
        port = port or _DEFAULT_PORTS.get(scheme)
    return scheme, host, port, parts.path


class Credential(BaseModel):
    """The server's credentials for the URLs under ``prefix``, and for nothing else.

    ``prefix`` is ``https://HOST[:PORT]/PATH/`` (or ``webdavs://…``; ``http://`` and
    ``webdav://`` for plain-text servers) with a username and password for WebDAV, or
    ``s3://BUCKET/[PATH/]`` with an access key pair or a profile.  A URL is under the
    prefix when scheme, host and port are the same and its path continues the
    prefix's path at a ``/``: ``https://dav.example.org/data/`` holds
    ``webdavs://dav.example.org/data/x`` but not ``…/database``, ``http://…`` or
    ``https://dav.example.org.evil/data/``.
    """

    model_config = ConfigDict(extra="forbid")

    prefix: str
    username: str = ""
    password: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""
    profile: str = ""

    @model_validator(mode="after")
    def _fits_the_scheme(self) -> Credential:
        origin = _origin(self.prefix)
        if origin is None or origin[0] not in ("http", "https", "s3"):
            raise ValueError(
                f"storage.credentials prefix {self.prefix!r}: write https://HOST[:PORT]/PATH/ "
                "(or webdavs://, http://, webdav://) for WebDAV, or s3://BUCKET/[PATH/]"
            )
        s3 = bool(self.access_key_id or self.secret_access_key or self.session_token)
        if origin[0] == "s3":
            if self.username or self.password:
                raise ValueError(
                    f"storage.credentials {self.prefix}: s3:// takes access_key_id and "
                    "secret_access_key (or profile), not username/password"
                )
            if not (s3 or self.profile):
                raise ValueError(
                    f"storage.credentials {self.prefix}: give access_key_id and "
                    "secret_access_key, or profile"
                )
        elif s3 or self.profile or not self.username:
            raise ValueError(
                f"storage.credentials {self.prefix}: a WebDAV server takes username and password"
            )
        return self

    def holds(self, url: str) -> bool:
        mine, theirs = _origin(self.prefix), _origin(url)
        if mine is None or theirs is None or mine[:3] != theirs[:3]:
            return False
        base = mine[3].rstrip("/")
        return not base or theirs[3] == base or theirs[3].startswith(base + "/")


class EgressSettings(BaseModel):
    """Which special addresses remote inputs and outputs may reach (http(s)://, webdav(s)://).

    Loopback, link-local, private, unspecified, multicast and reserved addresses are
    refused unless ``allow`` lists them: by class name (``"loopback"``, ``"private"``,
    ``"link-local"``, …), as an address or CIDR (``"10.1.2.0/24"``), or by host name
    (``"dav.internal.example.org"``: whatever it resolves to).  Left unset, a shared
    server (``toolship serve``) allows none of them and the embedded server allows
    ``loopback`` and ``private``.
    """

    model_config = ConfigDict(extra="forbid")

    allow: list[str] | None = None

    @field_validator("allow")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        out = []
        for entry in v:
            item = entry.strip().lower().rstrip(".")
            if item not in EGRESS_CLASSES and not _HOST_NAME.match(item):
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(
                        f"storage.egress.allow: {entry!r} is neither an address class ("
                        f"{', '.join(EGRESS_CLASSES)}), an address or CIDR, nor a host name"
                    ) from None
            out.append(item)
        return out


class StorageSettings(BaseModel):
    # file:// URLs (inputs and outputs) must resolve inside one of these.
    allowed_roots: list[Path] = Field(
        default_factory=lambda: [Path.home(), Path(tempfile.gettempdir())]
    )
    # Files (or small-file requests) in flight at once per attempt, and tries per file on
    # transient errors.  Small objects cost a round trip each, so many go at once.
    max_concurrency: int = Field(default=32, ge=1, le=256)
    attempts: int = Field(default=4, ge=1, le=20)
    s3: S3Settings = Field(default_factory=S3Settings)
    # The server's own credentials, each sent only to the URLs under its prefix.
    credentials: list[Credential] = Field(default_factory=list)
    egress: EgressSettings = Field(default_factory=EgressSettings)

    @model_validator(mode="before")
    @classmethod
    def _no_server_wide_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"webdav_username", "webdav_password"} & data.keys():
            raise ValueError(
                "storage.webdav_username/webdav_password are gone: they were sent to every "
                "host a task named. Scope them to the server they belong to instead: "
                '[[storage.credentials]] with prefix = "https://dav.example.org/remote.php/dav/"'
                ", username and password"
            )
        return data

    @field_validator("allowed_roots")
    @classmethod
    def _resolve(cls, v: list[Path]) -> list[Path]:
        return [p.expanduser().resolve() for p in v]

    def for_server(self, *, embedded: bool) -> StorageSettings:
        """These settings with the egress default of the server kind filled in.

        Done once at start-up, so the policy that travels to Slurm workers (with the
        rest of these settings) is the one the server applies.
        """
        if self.egress.allow is not None:
            return self
        allow = list(EMBEDDED_EGRESS) if embedded else []
        return self.model_copy(update={"egress": EgressSettings(allow=allow)})

    def credential_for(self, url: str) -> Credential | None:
        """The server credential whose prefix holds ``url`` (the longest such), or None."""
        found = [c for c in self.credentials if c.holds(url)]
        return max(found, key=lambda c: len(c.prefix)) if found else None
