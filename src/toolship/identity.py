"""Who is asking: a principal (user name, role, groups), whatever proved it.

Roles are ordered: a viewer reads what it may see, a user also runs tasks, a
maintainer also builds, publishes and deprecates services, an admin sees and
manages everything (users included).  What a principal may see of others' work
is the access mode's (``access.mode``): ``all``, ``owner`` or ``owner-or-admin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

__all__ = [
    "ANONYMOUS",
    "SERVER_ADMIN",
    "AccessMode",
    "Principal",
    "Role",
    "parse_role",
]

AccessMode = Literal["all", "owner", "owner-or-admin"]


class Role(IntEnum):
    VIEWER = 1
    USER = 2
    MAINTAINER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()


def parse_role(text: str) -> Role:
    try:
        return Role[text.strip().upper()]
    except KeyError:
        known = ", ".join(r.label for r in Role)
        raise ValueError(f"unknown role {text!r}; roles: {known}") from None


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    groups: tuple[str, ...] = ()
    # How it was proven: "none" (no authentication configured), "server-token" (the
    # token file), "token" (a user's own token), "oidc" (a JWT from the issuer).
    via: str = "token"

    @property
    def group(self) -> str | None:
        """The group its tasks are recorded under (its first; None: it has none)."""
        return self.groups[0] if self.groups else None

    @property
    def is_admin(self) -> bool:
        return self.role >= Role.ADMIN

    def at_least(self, role: Role) -> bool:
        return self.role >= role

    def sees(self, owner: str | None, mode: AccessMode) -> bool:
        """May it see (and, with the role, act on) a record owned by ``owner``?

        A record without an owner was made before users existed (or by a server
        without authentication): only admins, and everyone in mode ``all``, see it.
        """
        if mode == "all" or owner == self.name:
            return True
        return mode == "owner-or-admin" and self.is_admin

    def owner_filter(self, mode: AccessMode) -> str | None:
        """The owner a listing is restricted to (None: every record it may see is anyone's)."""
        if mode == "all" or (mode == "owner-or-admin" and self.is_admin):
            return None
        return self.name


# Requests to a server without authentication (loopback, no tokens): the operator.
ANONYMOUS = Principal("local", Role.ADMIN, via="none")
# Holders of a token in server.token_file (the embedded server's own token too).
SERVER_ADMIN = Principal("admin", Role.ADMIN, via="server-token")
