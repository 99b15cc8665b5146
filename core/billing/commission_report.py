"""The admin's Commissions page, commission earned in a period: per business (from the ledger,
through `commissions_by_tenant`) with its billing mode and current rate, and a series per day (per
month past 62 days) for the chart."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.commission import commissions
from core.billing.integrity import COMMISSION_KINDS, REFUND_KINDS
from core.billing.periods import Period
from core.billing.reports import commissions_by_tenant
from core.config import Settings
from core.ledger.models import Transfer
from core.tenants.models import BillingMode, Tenant

DAILY_UP_TO_DAYS = 62  # a longer period is charted by month


@dataclass(frozen=True)
class CommissionRow:
    tenant_id: uuid.UUID
    name: str
    billing_mode: BillingMode
    rate_bps: int
    rate_is_default: bool
    from_wallet_cents: int
    on_invoice_cents: int

    @property
    def total_cents(self) -> int:
        return self.from_wallet_cents + self.on_invoice_cents


@dataclass(frozen=True)
class Bar:
    start: date
    label: str
    cents: int


@dataclass(frozen=True)
class CommissionReport:
    rows: list[CommissionRow]
    series: list[Bar]
    by_month: bool

    @property
    def from_wallet_cents(self) -> int:
        return sum(r.from_wallet_cents for r in self.rows)

    @property
    def on_invoice_cents(self) -> int:
        return sum(r.on_invoice_cents for r in self.rows)

    @property
    def total_cents(self) -> int:
        return self.from_wallet_cents + self.on_invoice_cents


def _eat_day(session: AsyncSession, column: Any) -> Any:
    """The Nairobi calendar day of a UTC timestamp, in SQL. SQLite stores naive UTC; Nairobi has kept
    UTC+3 all year since 1942, so a fixed shift is exact there."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("Africa/Nairobi", column))
    return func.date(column, "+3 hours")


async def commission_report(session: AsyncSession, *, period: Period, settings: Settings) -> CommissionReport:
    """Commission earned in the period per business (the ledger, through `commissions_by_tenant`),
    with each business's billing mode and current rate, and a series per day (per month past 62 days)."""
    earned = await commissions_by_tenant(session, since=period.since, until=period.until)
    info = {
        tid: (mode, bps)
        for tid, mode, bps in (
            await session.execute(
                select(Tenant.id, Tenant.billing_mode, Tenant.commission_bps).where(
                    Tenant.id.in_([c.tenant_id for c in earned])
                )
            )
        ).all()
    }
    default = await commissions.default_bps(session, settings=settings)
    rows = []
    for c in earned:
        mode, bps = info[c.tenant_id]
        # the same rule as CommissionService.rate_for, without a query per business
        rate = 0 if mode is BillingMode.subscription else bps if bps is not None else default
        rows.append(
            CommissionRow(
                c.tenant_id,
                c.name,
                mode,
                rate,
                bps is None and mode is not BillingMode.subscription,
                c.from_wallet_cents,
                c.on_invoice_cents,
            )
        )
    day = _eat_day(session, Transfer.created_at)
    per_day = {
        date.fromisoformat(str(d)): int(cents)
        for d, cents in (
            await session.execute(
                # A reversed payment's commission given back comes off the day it was given back.
                select(
                    day,
                    func.sum(
                        case(
                            (Transfer.kind.in_(REFUND_KINDS), -Transfer.amount_cents),
                            else_=Transfer.amount_cents,
                        )
                    ),
                )
                .where(
                    Transfer.kind.in_(COMMISSION_KINDS + REFUND_KINDS),
                    Transfer.created_at >= period.since,
                    Transfer.created_at < period.until,
                )
                .group_by(day)
            )
        ).all()
    }
    by_month = period.days > DAILY_UP_TO_DAYS
    series: list[Bar] = []
    d = period.first
    while d <= period.last:
        cents = per_day.get(d, 0)
        if by_month:
            if series and series[-1].start == d.replace(day=1):
                last = series.pop()
                series.append(Bar(last.start, last.label, last.cents + cents))
            else:
                series.append(Bar(d.replace(day=1), f"{d:%b %Y}", cents))
        else:
            series.append(Bar(d, f"{d:%d %b}", cents))
        d += timedelta(days=1)
    return CommissionReport(rows, series, by_month)
