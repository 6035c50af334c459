"""Users and their bearer tokens in SQL.

A token is shown once, when it is made, and stored only as its sha256: whoever reads
the database cannot use it.  Tokens carry a prefix (``tsh_``) so the verifier knows
at once whether a bearer is one of ours (an OIDC JWT is asked of its own verifier,
never of the database).  Looking a token up is on every request's path, so what a
lookup found is kept in memory for a short while; a revocation, disable or enable made
through this store forgets it at once (another process's within ``CACHE_SECONDS``).
``last_used`` is written at most once a minute per token.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from sqlalchemy import Connection, Engine, Row, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError

from toolship.db.schema import user_tokens, users
from toolship.db.store import make_engine
from toolship.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from toolship.identity import Principal, Role, parse_role
from toolship.timeutil import now_rfc3339

__all__ = ["PREFIX", "IssuedToken", "TokenRecord", "User", "UserStore", "digest", "has_users"]

PREFIX = "tsh_"
CACHE_SECONDS = 30.0  # what a lookup found, trusted this long (changes made here: at once)
USED_EVERY = 60.0  # last_used is written at most this often per token
_ACTIVE_SECONDS = 5.0  # "are there users?": asked of the database this often
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# Principals that are not users: the server token's and the unauthenticated operator's.
_RESERVED = {
    "admin": "the holders of server.token_file's tokens act as 'admin'",
    "local": "a server with no authentication at all treats every request as 'local'",
}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    user: str
    created: str
    revoked: str | None = None
    last_used: str | None = None


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    groups: tuple[str, ...]
    disabled: bool
    created: str
    tokens: tuple[TokenRecord, ...] = ()

    @property
    def principal(self) -> Principal:
        return Principal(self.name, self.role, self.groups, via="token")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: ``token`` is the only time anyone sees it."""

    id: str
    user: str
    token: str


@dataclass(frozen=True, slots=True)
class _Found:
    token_id: str
    principal: Principal
    at: float  # when it was read (the store's clock)


def check_name(name: str, what: str = "user name") -> str:
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"{what} {name!r} is not allowed: use 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def _groups(given: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for g in given:
        if not _NAME.fullmatch(g):
            raise InvalidRequest(
                f"group {g!r} is not allowed: use 1-64 letters, digits, '.', '_', '@' or '-', "
                "starting with a letter or digit"
            )
        if g not in out:
            out.append(g)
    return tuple(out)


def _no_user(name: str) -> NotFound:
    return NotFound(f"no user {name!r} on this server: see the users with `toolship user ls`")


def has_users(database_url: str) -> bool:
    """Has the server at ``database_url`` users? Read without migrating the database (a
    server that refuses to start leaves it as it was); one from before users has none."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(users.name):
                return False
            return conn.execute(select(users.c.name).limit(1)).first() is not None
    finally:
        engine.dispose()


class UserStore:
    """Users, their tokens, and the lookup of a bearer token (the verifier's)."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.clock = clock
        self._lock = threading.Lock()
        self._found: dict[str, _Found] = {}  # digest → what a lookup found
        self._used: dict[str, float] = {}  # token id → when last_used was written
        self._active: tuple[float, bool] | None = None  # when asked, and were there users?

    # --- users --------------------------------------------------------------

    def add(
        self, name: str, role: Role | str = Role.USER, groups: Iterable[str] = ()
    ) -> tuple[User, IssuedToken]:
        """A new user and its first token."""
        check_name(name)
        if name in _RESERVED:
            raise InvalidRequest(
                f"the name {name!r} is taken: {_RESERVED[name]}; choose another name"
            )
        try:
            role = parse_role(role) if isinstance(role, str) else role
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        row = {
            "name": name,
            "role": role.label,
            "groups": json.dumps(list(_groups(groups))),
            "disabled": False,
            "created": now_rfc3339(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(users).values(**row))
                issued = self._issue(conn, name)
        except IntegrityError:
            raise Conflict(
                f"user {name!r} exists: give it a new token with `toolship user token new "
                f"{name}`, or choose another name"
            ) from None
        self._forget()
        return self.get(name), issued

    def get(self, name: str) -> User:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
            if row is None:
                raise _no_user(name)
            return _user(row, self._tokens(conn, [name]).get(name, ()))

    def list(self) -> builtins.list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.name)).all()
            held = self._tokens(conn, None)
        return [_user(r, held.get(r.name, ())) for r in rows]

    def set_disabled(self, name: str, disabled: bool) -> User:
        with self.engine.begin() as conn:
            done = conn.execute(update(users).where(users.c.name == name).values(disabled=disabled))
            if done.rowcount == 0:
                raise _no_user(name)
        self._forget()
        return self.get(name)

    def any_users(self) -> bool:
        """Are there users (then a server asks every request for a token, even when every
        one of them is disabled)?"""
        now = self.clock()
        held = self._active
        if held is not None and now - held[0] < _ACTIVE_SECONDS:
            return held[1]
        with self.engine.connect() as conn:
            found = conn.execute(select(users.c.name).limit(1)).first() is not None
        self._active = (now, found)
        return found

    # --- tokens -------------------------------------------------------------

    def new_token(self, name: str) -> IssuedToken:
        with self.engine.begin() as conn:
            if conn.execute(select(users.c.name).where(users.c.name == name)).first() is None:
                raise _no_user(name)
            return self._issue(conn, name)

    def revoke(self, token_id: str) -> TokenRecord:
        with self.engine.begin() as conn:
            row = conn.execute(select(user_tokens).where(user_tokens.c.id == token_id)).first()
            if row is None:
                raise NotFound(f"no token with id {token_id!r}: the ids are in `toolship user ls`")
            if row.revoked is not None:
                raise Conflict(f"token {token_id} of {row.user} was revoked at {row.revoked}")
            when = now_rfc3339()
            conn.execute(
                update(user_tokens).where(user_tokens.c.id == token_id).values(revoked=when)
            )
        self._forget()
        return replace(_token(row), revoked=when)

    def lookup(self, token: str) -> Principal | None:
        """Whose token it is; None: not one of ours (no prefix).

        Raises Unauthorized for one of ours that is unknown, revoked or a disabled user's.
        """
        if not token.startswith(PREFIX):
            return None
        key = digest(token)
        now = self.clock()
        with self._lock:
            found = self._found.get(key)
        if found is None or now - found.at >= CACHE_SECONDS:
            found = self._read(key, now)
            with self._lock:
                if len(self._found) > 10_000:
                    self._found.clear()
                self._found[key] = found
        self._touch(found.token_id, now)
        return found.principal

    # --- inside -------------------------------------------------------------

    def _read(self, key: str, now: float) -> _Found:
        query = (
            select(user_tokens.c.id, user_tokens.c.revoked, users)
            .join(users, users.c.name == user_tokens.c.user)
            .where(user_tokens.c.digest == key)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise Unauthorized(
                "the bearer token is not a token of this server (mistyped, or its user was "
                "removed): ask an admin for one (`toolship user token new NAME`)"
            )
        if row.revoked is not None:
            raise Unauthorized(
                f"token {row.id} of {row.name} was revoked at {row.revoked}: ask an admin for "
                f"a new one (`toolship user token new {row.name}`)"
            )
        if row.disabled:
            raise Unauthorized(
                f"user {row.name} is disabled: an admin can enable it "
                f"(`toolship user enable {row.name}`)"
            )
        return _Found(row.id, _user(row, ()).principal, now)

    def _touch(self, token_id: str, now: float) -> None:
        with self._lock:
            last = self._used.get(token_id)
            if last is not None and now - last < USED_EVERY:
                return
            self._used[token_id] = now
        with self.engine.begin() as conn:
            conn.execute(
                update(user_tokens)
                .where(user_tokens.c.id == token_id)
                .values(last_used=now_rfc3339())
            )

    def _issue(self, conn: Connection, name: str) -> IssuedToken:
        token = PREFIX + secrets.token_urlsafe(32)
        token_id = secrets.token_hex(6)
        conn.execute(
            insert(user_tokens).values(
                id=token_id, user=name, digest=digest(token), created=now_rfc3339()
            )
        )
        return IssuedToken(token_id, name, token)

    def _tokens(
        self, conn: Connection, names: builtins.list[str] | None
    ) -> dict[str, tuple[TokenRecord, ...]]:
        query = select(user_tokens).order_by(user_tokens.c.created, user_tokens.c.id)
        if names is not None:
            query = query.where(user_tokens.c.user.in_(names))
        held: dict[str, list[TokenRecord]] = {}
        for row in conn.execute(query):
            held.setdefault(row.user, []).append(_token(row))
        return {k: tuple(v) for k, v in held.items()}

    def _forget(self) -> None:
        with self._lock:
            self._found.clear()
        self._active = None


def _token(row: Row[tuple[object, ...]]) -> TokenRecord:
    return TokenRecord(row.id, row.user, row.created, row.revoked, row.last_used)


def _user(row: Row[tuple[object, ...]], tokens: tuple[TokenRecord, ...]) -> User:
    return User(
        name=row.name,
        role=parse_role(row.role),
        groups=tuple(json.loads(row.groups)),
        disabled=bool(row.disabled),
        created=row.created,
        tokens=tokens,
    )
