"""GET /api/v1/quota: a user's limits and what counts against them now (``toolship quota``)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request

from toolship.api.auth import principal
from toolship.api.state import app_state
from toolship.config import Quota
from toolship.engine.quotas import Use
from toolship.errors import Forbidden, NotFound
from toolship.models import FairShareStanding, QuotaLimits, QuotaReport, QuotaUse

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["quota"])


def _limits(name: str, setting: str, quota: Quota, use: Use) -> QuotaLimits:
    return QuotaLimits(name=name, setting=setting, **quota.model_dump(), use=_use(use))


def _use(use: Use) -> QuotaUse:
    return QuotaUse(
        running_cpus=use.cpus,
        running_memory_gb=round(use.memory_gb, 6),
        running_gpus=use.gpus,
        queued_tasks=use.queued,
    )


@router.get("/quota", response_model=QuotaReport)
def get_quota(request: Request, user: Annotated[str | None, Query()] = None) -> QuotaReport:
    """Your limits and use; an admin may name any user."""
    me = principal(request)
    state = app_state(request)
    name = user or me.name
    group = me.group
    if name != me.name:
        if not me.is_admin:
            raise Forbidden(
                f"only admins see another user's quota; ask for your own "
                f"(toolship quota, or GET /api/v1/quota) as {me.name}"
            )
        try:
            group = state.users.get(name).principal.group
        except NotFound:
            group = None  # known from OIDC claims only, or not yet seen
    accounts = state.engine.core.accounts
    now = max(state.engine.core.now, time.time())  # running attempts' use counts up to now
    quota, setting = accounts.quotas.user(name)
    group_quota, group_setting = accounts.quotas.group(group)
    shares = accounts.shares
    return QuotaReport(
        user=_limits(name, setting, quota, accounts.tally.user(name)),
        group=None
        if group is None
        else _limits(
            group,
            group_setting or "none: access.group_quotas has no entry for it",
            group_quota,
            accounts.tally.group(group),
        ),
        fair_share=FairShareStanding(
            on=shares.on,
            usage_core_seconds=round(accounts.ledger.users.at(name, now), 3),
            weight=shares.user_weight(name),
            half_life_hours=shares.half_life / 3600,
        ),
    )
