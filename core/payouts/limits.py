"""The safety limits of money out, per business: the most one payout may send and the most all payouts
of one Nairobi day may send together (whole shillings).

A business's own values (`tenants.payout_max_kes`, `payout_daily_max_kes`) replace the platform's
(PAYOUT_MAX_KES, PAYOUT_DAILY_MAX_KES); M-Pesa's B2C ceiling of KES 250 000 a payout applies on top.

The day's total counts the payouts of the same mode that are pending or paid: a payout still on its way
may yet be paid, so it counts until it fails. Test payouts count against the test day, so a developer
meets the limits in the simulator exactly as the business will in production. The caller holds the
business's row lock (`lock_business`) while it adds up the day and writes the new payout, so two
payouts at once cannot both fit in what only one of them may use.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.db import utcnow
from core.money import format_kes
from core.payouts.errors import LIMITS_HOW, DailyPayoutLimitReached, PayoutOverLimit
from core.payouts.models import Payout, PayoutStatus
from core.payouts.schemas import B2C_MAX_AMOUNT
from core.tenants.models import Mode, Tenant

NAIROBI = ZoneInfo("Africa/Nairobi")
# Queued batch rows count: an approved batch is on its way, row by row.
COUNTED = (PayoutStatus.queued, PayoutStatus.pending, PayoutStatus.success)


@dataclass(frozen=True)
class PayoutLimits:
    per_payout_kes: int
    daily_kes: int


def limits_of(tenant: Tenant, settings: Settings) -> PayoutLimits:
    per_payout = tenant.payout_max_kes if tenant.payout_max_kes is not None else settings.PAYOUT_MAX_KES
    daily = (
        tenant.payout_daily_max_kes
        if tenant.payout_daily_max_kes is not None
        else settings.PAYOUT_DAILY_MAX_KES
    )
    return PayoutLimits(min(per_payout, B2C_MAX_AMOUNT), daily)


def nairobi_day(now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the Nairobi calendar day holding `now`, as aware datetimes."""
    local = now.astimezone(NAIROBI)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


async def lock_business(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
    """The business row, locked until the end of the transaction (the lock order's tenant step: a
    payout's transaction takes no other lock before it)."""
    tenant = await session.get(Tenant, tenant_id, with_for_update=True, populate_existing=True)
    assert tenant is not None
    return tenant


async def sent_today(session: AsyncSession, *, tenant_id: uuid.UUID, mode: Mode, now: datetime) -> int:
    """Whole shillings of this Nairobi day's payouts of `mode` that are on their way or paid."""
    start, end = nairobi_day(now)
    total = await session.scalar(
        select(func.coalesce(func.sum(Payout.amount), 0)).where(
            Payout.tenant_id == tenant_id,
            Payout.mode == mode,
            Payout.status.in_(COUNTED),
            Payout.created_at >= start,
            Payout.created_at < end,
        )
    )
    return int(total or 0)


async def check_limits(
    session: AsyncSession, *, tenant: Tenant, mode: Mode, amount: int, settings: Settings
) -> None:
    """Refuse `amount` over the per-payout limit (422) or over what is left of today's (429)."""
    limits = limits_of(tenant, settings)
    if amount > limits.per_payout_kes:
        raise PayoutOverLimit(
            f"{format_kes(amount)} is more than {tenant.name} may send in one payout: its limit is "
            f"{format_kes(limits.per_payout_kes)}. Send a smaller amount, or split it over several "
            f"payouts; {LIMITS_HOW}.",
            field="amount",
            limit_kes=limits.per_payout_kes,
            amount_kes=amount,
        )
    now = utcnow()
    so_far = await sent_today(session, tenant_id=tenant.id, mode=mode, now=now)
    if so_far + amount > limits.daily_kes:
        _, midnight = nairobi_day(now)
        wait = max(1, int((midnight - now).total_seconds()))
        left = max(0, limits.daily_kes - so_far)
        raise DailyPayoutLimitReached(
            f"This payout of {format_kes(amount)} would take today's payouts to "
            f"{format_kes(so_far + amount)}, over {tenant.name}'s daily limit of "
            f"{format_kes(limits.daily_kes)}: {format_kes(so_far)} is already sent or on its way today "
            f"(Nairobi time), so {format_kes(left)} is left. Send at most that, or wait until midnight in "
            f"Nairobi; {LIMITS_HOW}.",
            limit="payout_daily",
            allowed=limits.daily_kes,
            window_seconds=24 * 3600,
            retry_after=wait,
            resets_at=midnight.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            sent_today_kes=so_far,
            amount_kes=amount,
        )
