"""The task listings' queries (ListTasks, the web UI, counts by state).

Clients watch many tasks by polling ListTasks with the same filter again and again.
Building its SQLAlchemy statement cost more than running it, so a page's statement
is built once per shape of filter (which fields are set, how many tags, whether a
page token follows) and its values are bound at each call.
"""

from __future__ import annotations

import base64
import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, and_, bindparam, exists, func, select
from sqlalchemy.sql import ColumnElement, Select

from toolship.db.schema import task_tags, tasks
from toolship.errors import InvalidRequest
from toolship.services import SERVICE_TAG
from toolship.states import TaskState

__all__ = ["ListFilter", "counts_query", "decode_token", "encode_token", "page_query"]

_END = "\U0010ffff"  # after every character: a prefix's range ends at prefix + _END
_KEPT_SHAPES = 256


@dataclass(frozen=True, slots=True)
class ListFilter:
    name_prefix: str | None = None
    state: TaskState | None = None
    tags: tuple[tuple[str, str], ...] = ()
    batch: str | None = None
    owner: str | None = None  # only this owner's (None: anyone's)
    # A service's runs (its tag toolship.service: NAME, any version, or NAME@VERSION).
    service: str | None = None


def encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not raw.startswith("s") or not raw[1:].isdigit() or len(raw) > 20:
            raise ValueError(raw)
        seq = int(raw[1:])
        if seq >= 2**63:  # past any sequence number (and SQL's 64-bit integers)
            raise ValueError(raw)
        return seq
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            f"page_token {token!r} is not a token this server issued; "
            "pass the next_page_token of the previous page, or none for the first page"
        ) from exc


def _conditions(flt: ListFilter) -> builtins.list[ColumnElement[bool]]:
    """The WHERE of a listing (each one an index can serve), its values bound (``_values``)."""
    conds: builtins.list[ColumnElement[bool]] = []
    if flt.state is not None:
        conds.append(tasks.c.state == bindparam("b_state"))
    if flt.batch is not None:
        conds.append(tasks.c.batch_id == bindparam("b_batch"))
    if flt.owner is not None:
        conds.append(tasks.c.owner == bindparam("b_owner"))
    if flt.name_prefix:
        # Range on the name index instead of LIKE (which would treat % and _ specially).
        conds.append(tasks.c.name >= bindparam("b_name_from"))
        conds.append(tasks.c.name < bindparam("b_name_to"))
    for i, (_key, value) in enumerate(flt.tags):
        tag_cond = [task_tags.c.task_seq == tasks.c.seq, task_tags.c.key == bindparam(f"b_tk{i}")]
        if value:
            tag_cond.append(task_tags.c.value == bindparam(f"b_tv{i}"))
        conds.append(exists().where(and_(*tag_cond)))
    if flt.service:
        tagged = [task_tags.c.task_seq == tasks.c.seq, task_tags.c.key == SERVICE_TAG]
        if "@" in flt.service:  # one version
            tagged.append(task_tags.c.value == bindparam("b_service"))
        else:  # any version: the values NAME@…
            tagged.append(task_tags.c.value >= bindparam("b_service_from"))
            tagged.append(task_tags.c.value < bindparam("b_service_to"))
        conds.append(exists().where(and_(*tagged)))
    return conds


def _values(flt: ListFilter) -> dict[str, Any]:
    """The values ``_conditions`` binds."""
    params: dict[str, Any] = {}
    if flt.state is not None:
        params["b_state"] = flt.state.value
    if flt.batch is not None:
        params["b_batch"] = flt.batch
    if flt.owner is not None:
        params["b_owner"] = flt.owner
    if flt.name_prefix:
        params.update(b_name_from=flt.name_prefix, b_name_to=flt.name_prefix + _END)
    for i, (key, value) in enumerate(flt.tags):
        params[f"b_tk{i}"] = key
        if value:
            params[f"b_tv{i}"] = value
    if flt.service and "@" in flt.service:
        params["b_service"] = flt.service
    elif flt.service:
        params.update(b_service_from=flt.service + "@", b_service_to=flt.service + "@" + _END)
    return params


def _shape(flt: ListFilter) -> tuple[object, ...]:
    """What decides a listing's statement (not its values)."""
    service = None if not flt.service else "@" in flt.service
    return (flt.state is not None, flt.batch is not None, flt.owner is not None,
            bool(flt.name_prefix), tuple(bool(v) for _, v in flt.tags), service)  # fmt: skip


_pages: dict[tuple[object, ...], Select[Any]] = {}


def page_query(
    columns: Sequence[Column[Any]], flt: ListFilter, *, after_seq: int | None, limit: int
) -> tuple[Select[Any], dict[str, Any]]:
    """One page of ``columns``, newest first, keyset-paginated on ``seq`` (below
    ``after_seq`` when a page token follows): the statement and its values."""
    params = _values(flt)
    if after_seq is not None:
        params["b_seq"] = after_seq
    key = (tuple(c.name for c in columns), _shape(flt), after_seq is not None, limit)
    query = _pages.get(key)
    if query is None:
        conds = _conditions(flt)
        if after_seq is not None:
            conds.append(tasks.c.seq < bindparam("b_seq"))
        query = select(*columns)
        if conds:
            query = query.where(and_(*conds))
        query = query.order_by(tasks.c.seq.desc()).limit(limit)
        if len(_pages) < _KEPT_SHAPES:
            _pages[key] = query
    return query, params


def counts_query(flt: ListFilter) -> tuple[Select[Any], dict[str, Any]]:
    """How many tasks ``flt`` selects, by state: the statement and its values."""
    conds = _conditions(flt)
    query = select(tasks.c.state, func.count()).group_by(tasks.c.state)
    if conds:
        query = query.where(and_(*conds))
    return query, _values(flt)
