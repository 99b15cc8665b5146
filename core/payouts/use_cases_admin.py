"""The platform operator's tools for money out: a business's payout limits.

The limits are a safety net against a leaked key or a hijacked account, so the business does not
raise its own: the operator does, on request (`lipapush payout limits`), audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.errors import InvalidInput
from core.payouts.limits import PayoutLimits, limits_of
from core.payouts.schemas import B2C_MAX_AMOUNT, B2C_MIN_AMOUNT
from core.runtime import runtime
from core.tenants.service import tenants

UNSET = -1  # "back to the platform's default" (PAYOUT_MAX_KES / PAYOUT_DAILY_MAX_KES)


@dataclass(frozen=True)
class LimitsView:
    business: str
    limits: PayoutLimits
    own_per_payout: bool  # False: the platform default applies
    own_daily: bool


@use_case(Permission.platform_admin, audit="payout.limits_changed")
async def set_payout_limits(
    actor: Actor, *, tenant_id: uuid.UUID, per_payout_kes: int | None = None, daily_kes: int | None = None
) -> LimitsView:
    """Set a business's per-payout and daily limits (whole shillings); None leaves one as it is,
    UNSET returns it to the platform's default."""
    for field, value in (("per_payout_kes", per_payout_kes), ("daily_kes", daily_kes)):
        if value is not None and value != UNSET and value < B2C_MIN_AMOUNT:
            raise InvalidInput(field, f"A payout limit is at least KES {B2C_MIN_AMOUNT}.")
    if per_payout_kes is not None and per_payout_kes > B2C_MAX_AMOUNT:
        raise InvalidInput("per_payout_kes", f"M-Pesa pays at most KES {B2C_MAX_AMOUNT:,} in one payout.")
    async with unit_of_work(actor) as uow:
        tenant = await tenants.get(uow.session, tenant_id)
        before = (tenant.payout_max_kes, tenant.payout_daily_max_kes)
        if per_payout_kes is not None:
            tenant.payout_max_kes = None if per_payout_kes == UNSET else per_payout_kes
        if daily_kes is not None:
            tenant.payout_daily_max_kes = None if daily_kes == UNSET else daily_kes
        await uow.audit(
            "payout.limits_changed",
            target=str(tenant.id),
            before=list(before),
            after=[tenant.payout_max_kes, tenant.payout_daily_max_kes],
        )
        return LimitsView(
            tenant.name,
            limits_of(tenant, runtime().settings),
            tenant.payout_max_kes is not None,
            tenant.payout_daily_max_kes is not None,
        )
