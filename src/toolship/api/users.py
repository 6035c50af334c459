"""Users and their tokens (admins: ``/api/v1/users``, ``/api/v1/tokens``), who am I
(``/api/v1/me``: anyone), and :class:`UserTokens`, the verifier of users' tokens.

A user's token is shown once, in the answer that made it; the server keeps its sha256
(:mod:`toolship.db.users`).  Every change here is an event in the who-did-what log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from toolship.api.auth import principal
from toolship.api.events import admin_only, record
from toolship.api.state import app_state
from toolship.db.users import IssuedToken as Issued
from toolship.db.users import TokenRecord, User, UserStore
from toolship.identity import Principal
from toolship.models import (
    CreatedUser,
    ErrorResponse,
    IssuedToken,
    NewUser,
    TokenInfo,
    UserInfo,
    UserList,
    Whoami,
)

__all__ = ["UserTokens", "router"]

router = APIRouter(prefix="/api/v1", tags=["users"])

_ADMINS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "The caller is not an admin"}
}
_EXISTS = {**_ADMINS, 409: {"model": ErrorResponse, "description": "The user exists already"}}
_REVOKED = {**_ADMINS, 409: {"model": ErrorResponse, "description": "The token was revoked"}}


class UserTokens:
    """The Authenticator's verifier of users' own tokens (``tsh_…``), active once there
    are users."""

    def __init__(self, users: UserStore) -> None:
        self.users = users

    @property
    def active(self) -> bool:
        return self.users.any_users()

    async def verify(self, token: str, request: Request) -> Principal | None:
        return self.users.lookup(token)


def _reply(model: BaseModel) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"))


def _token(t: TokenRecord) -> TokenInfo:
    return TokenInfo(id=t.id, user=t.user, created=t.created, revoked=t.revoked,
                     last_used=t.last_used)  # fmt: skip


def _issued(t: Issued) -> IssuedToken:
    return IssuedToken(id=t.id, user=t.user, token=t.token)


def _user(u: User) -> UserInfo:
    return UserInfo(
        name=u.name,
        role=u.role.label,
        groups=list(u.groups),
        disabled=u.disabled,
        created=u.created,
        tokens=[_token(t) for t in u.tokens],
    )


@router.get("/me", operation_id="Whoami", response_model=Whoami)
async def whoami(request: Request) -> JSONResponse:
    """Who the server takes the caller for: name, role, groups and how it was proven."""
    who = principal(request)
    return _reply(Whoami(name=who.name, role=who.role.label, groups=list(who.groups), via=who.via))


@router.post("/users", operation_id="AddUser", response_model=CreatedUser, responses=_EXISTS)
async def add_user(request: Request, body: Annotated[NewUser, Body()]) -> JSONResponse:
    """Add a user with a first token; the answer is the only time the token is shown."""
    admin_only(request, "adding users")
    user, issued = app_state(request).users.add(body.name, body.role, body.groups)
    groups = f", groups {', '.join(user.groups)}" if user.groups else ""
    record(request, "user.add", user.name, f"role {user.role.label}{groups}")
    return _reply(CreatedUser(user=_user(user), token=_issued(issued)))


@router.get("/users", operation_id="ListUsers", response_model=UserList, responses=_ADMINS)
async def list_users(request: Request) -> JSONResponse:
    """Every user with its role, groups and tokens (their ids and use, never the tokens)."""
    admin_only(request, "the list of users")
    return _reply(UserList(users=[_user(u) for u in app_state(request).users.list()]))


@router.get("/users/{name}", operation_id="GetUser", response_model=UserInfo, responses=_ADMINS)
async def get_user(request: Request, name: str) -> JSONResponse:
    admin_only(request, "reading users")
    return _reply(_user(app_state(request).users.get(name)))


async def _set_disabled(request: Request, name: str, disabled: bool) -> JSONResponse:
    admin_only(request, "disabling and enabling users")
    user = app_state(request).users.set_disabled(name, disabled)
    record(request, "user.disable" if disabled else "user.enable", name)
    return _reply(_user(user))


@router.post(
    "/users/{name}:disable", operation_id="DisableUser", response_model=UserInfo, responses=_ADMINS
)
async def disable_user(request: Request, name: str) -> JSONResponse:
    """Refuse the user's tokens from now on (its tasks and records stay)."""
    return await _set_disabled(request, name, True)


@router.post(
    "/users/{name}:enable", operation_id="EnableUser", response_model=UserInfo, responses=_ADMINS
)
async def enable_user(request: Request, name: str) -> JSONResponse:
    """Accept the user's tokens that are not revoked again."""
    return await _set_disabled(request, name, False)


@router.post(
    "/users/{name}/tokens",
    operation_id="NewToken",
    response_model=CreatedUser,
    responses=_ADMINS,
)
async def new_token(request: Request, name: str) -> JSONResponse:
    """Another token for the user; the answer is the only time it is shown."""
    admin_only(request, "making tokens")
    users = app_state(request).users
    issued = users.new_token(name)
    record(request, "token.new", issued.id, f"for {name}")
    return _reply(CreatedUser(user=_user(users.get(name)), token=_issued(issued)))


@router.delete(
    "/tokens/{id}", operation_id="RevokeToken", response_model=TokenInfo, responses=_REVOKED
)
async def revoke_token(request: Request, id: str) -> JSONResponse:
    """Refuse the token from now on (the user's other tokens stay good)."""
    admin_only(request, "revoking tokens")
    revoked = app_state(request).users.revoke(id)
    record(request, "token.revoke", id, f"of {revoked.user}")
    return _reply(_token(revoked))
