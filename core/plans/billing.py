"""Paying a plan's monthly fee from the wallet, and what falls back when it is not paid.

A plan's period is a Nairobi calendar month, like its quota. The first payment buys the rest of the
current month at the matching share of the fee (to the cent, rounded up); after that each payment buys
the next whole month, at most one month ahead. A fee unpaid at the month's end lets the default plan
apply (`PlanService.state`) until it is paid: nothing in flight is cut off, since only new pushes are
counted. Each month is posted once (`cause_id` tenant:month): paying twice for one month is refused,
and a replayed post is a no-op in the ledger."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.periods import EAT
from core.billing.wallet import month_start, wallets
from core.config import Settings
from core.db import utcnow
from core.errors import Conflict, InvalidInput
from core.ledger.models import AccountKind
from core.ledger.service import ledger
from core.money import format_cents
from core.plans.models import ApiPlan
from core.plans.service import month_of, next_month_start
from core.tenants.models import Tenant

FEE_KIND = "plan_fee"


@dataclass(frozen=True)
class Due:
    amount_cents: int
    start: datetime
    end: datetime


def last_day(owing: Due) -> str:
    """The paid period's last day, as an owner reads it: "31 December 2026"."""
    return f"{(owing.end - timedelta(seconds=1)).astimezone(EAT):%-d %B %Y}"


def due(plan: ApiPlan, tenant: Tenant, *, now: datetime | None = None) -> Due | None:
    """What paying `plan` now buys and costs; None for a free plan. Refused (409) when the next month
    is paid already."""
    if plan.monthly_fee_cents == 0:
        return None
    now = now or utcnow()
    paid = tenant.plan_paid_until if tenant.plan_id == plan.id else None
    if paid is not None and paid > now:
        if paid > next_month_start(now):
            last = (paid - timedelta(seconds=1)).astimezone(EAT)
            raise Conflict(
                f"The {plan.name} plan is paid until the end of {last:%B %Y}, a month ahead already: pay "
                f"the next month from 1 {last:%B}."
            )
        return Due(plan.monthly_fee_cents, paid, next_month_start(paid))
    start, end = month_start(now), next_month_start(now)
    share = (end - now).total_seconds() / (end - start).total_seconds()
    return Due(max(1, math.ceil(plan.monthly_fee_cents * share)), now, end)


async def pay_from_wallet(
    session: AsyncSession, *, tenant: Tenant, plan: ApiPlan, settings: Settings, now: datetime | None = None
) -> Due:
    """Post the fee from the wallet to the platform's revenue and extend the paid period. The wallet's
    available balance (its floor counted, held commission not) must cover it."""
    owing = due(plan, tenant, now=now)
    if owing is None:
        raise InvalidInput("plan", f"The {plan.name} plan is free: there is nothing to pay.")
    wallet = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.wallet)
    revenue = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.revenue)
    await ledger.lock_in_order(session, wallet.id, revenue.id)
    view = await wallets.view(session, tenant=tenant, settings=settings)
    if view.available_cents < owing.amount_cents:
        raise Conflict(
            f"The {plan.name} plan costs {format_cents(owing.amount_cents)} until "
            f"{(owing.end - timedelta(seconds=1)).astimezone(EAT):%-d %B}, and the wallet has "
            f"{format_cents(max(0, view.available_cents))} available. Top up the wallet (POST "
            "/api/wallet/topup, or 👛 Wallet in the bot) and pay again."
        )
    posted = await ledger.transfer(
        session,
        tenant_id=tenant.id,
        cause_type="plan",
        cause_id=f"{tenant.id}:{month_of(owing.start)}",
        kind=FEE_KIND,
        debit=wallet,
        credit=revenue,
        amount_cents=owing.amount_cents,
        memo=f"{plan.name} plan, {owing.start.astimezone(EAT):%B %Y}",
    )
    if posted is None:  # this month was posted already (another request paid it a moment ago)
        raise Conflict(f"The {plan.name} plan is already paid for {owing.start.astimezone(EAT):%B %Y}.")
    tenant.plan_paid_until = owing.end
    await session.flush()
    return owing
