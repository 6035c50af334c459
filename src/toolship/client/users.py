"""Users, tokens and who did what in the SDK: :class:`Users`, mixed into
:class:`toolship.client.Client`.

Adding a user or a token answers the token itself; that answer is the only time
anyone sees it (the server keeps its sha256).  Everything but :meth:`Users.whoami`
is for admins.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from urllib.parse import quote

from toolship.client.base import BaseClient, Query
from toolship.models import (
    CreatedUser,
    EventInfo,
    EventList,
    NewUser,
    TokenInfo,
    UserInfo,
    UserList,
    Whoami,
)

__all__ = ["Users"]

USERS = "/api/v1/users"


def _name(name: str) -> str:
    return quote(name, safe="")


class Users(BaseClient):
    def whoami(self) -> Whoami:
        """Who the server takes this client for: name, role, groups, how it was proven."""
        return self._read(Whoami, "GET", "/api/v1/me")

    def add_user(self, name: str, role: str = "user", groups: Sequence[str] = ()) -> CreatedUser:
        """A new user and its first token (``.token.token``, shown this once)."""
        body = NewUser(name=name, role=role, groups=list(groups)).model_dump()
        return self._read(CreatedUser, "POST", USERS, json=body)

    def users(self) -> list[UserInfo]:
        return self._read(UserList, "GET", USERS).users

    def user(self, name: str) -> UserInfo:
        return self._read(UserInfo, "GET", f"{USERS}/{_name(name)}")

    def disable_user(self, name: str) -> UserInfo:
        """Refuse the user's tokens from now on; its tasks and records stay."""
        return self._read(UserInfo, "POST", f"{USERS}/{_name(name)}:disable")

    def enable_user(self, name: str) -> UserInfo:
        return self._read(UserInfo, "POST", f"{USERS}/{_name(name)}:enable")

    def new_token(self, name: str) -> CreatedUser:
        """Another token for the user (``.token.token``, shown this once)."""
        return self._read(CreatedUser, "POST", f"{USERS}/{_name(name)}/tokens")

    def revoke_token(self, token_id: str) -> TokenInfo:
        return self._read(TokenInfo, "DELETE", f"/api/v1/tokens/{_name(token_id)}")

    def events(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> Iterator[EventInfo]:
        """Who did what, newest first (pages fetched as they are read); ``action`` without
        a dot is a family (``task``: ``task.create``, ``task.cancel``)."""
        params: dict[str, str | int] = {
            k: v
            for k, v in (("actor", actor), ("action", action), ("target", target),
                         ("since", since))
            if v is not None
        }  # fmt: skip
        left = limit
        while True:
            query: Query = {**params, "limit": min(left or 1000, 1000)}
            page = self._read(EventList, "GET", "/api/v1/events", params=query)
            for event in page.events:
                yield event
                if left is not None:
                    left -= 1
                    if left == 0:
                        return
            if not page.next_page_token:
                return
            params["page_token"] = page.next_page_token
