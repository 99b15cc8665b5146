"""The admin's Commissions page, the platform's billing state: invoices by status and the overdue
ones, what business wallets hold and who is running low, and subscription revenue in a period with
the providers whose subscription lapses soon. (Commission earned is core.billing.commission_report.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.models import (
    Invoice,
    InvoiceStatus,
    SubscriptionOrder,
    SubscriptionPeriod,
    SubscriptionPlan,
)
from core.billing.periods import Period
from core.billing.subscriptions import is_lapsed
from core.config import Settings
from core.ledger.models import Account, AccountKind
from core.tenants.models import BillingMode, Tenant, TenantKind

LAPSING_WITHIN = timedelta(days=7)
LIST_LIMIT = 200


@dataclass(frozen=True)
class Tally:
    count: int = 0
    cents: int = 0


@dataclass(frozen=True)
class InvoiceRow:
    id: uuid.UUID
    number: str
    tenant_id: uuid.UUID
    tenant_name: str
    period_start: datetime
    period_end: datetime
    total_cents: int
    status: InvoiceStatus
    due_at: datetime
    overdue: bool

    @property
    def last_day(self) -> datetime:
        """The period's last instant (period_end is exclusive), for showing its last day."""
        return self.period_end - timedelta(seconds=1)


@dataclass(frozen=True)
class InvoiceSummary:
    by_status: dict[InvoiceStatus, Tally]
    overdue: Tally
    latest: list[InvoiceRow]


async def invoice_summary(session: AsyncSession, *, now: datetime, latest: int = 20) -> InvoiceSummary:
    """Every invoice's current state: counts and sums by status, the overdue ones (issued, past due),
    and the latest issued."""
    by_status = {s: Tally() for s in InvoiceStatus}
    for status, count, cents in (
        await session.execute(
            select(Invoice.status, func.count(), func.coalesce(func.sum(Invoice.total_cents), 0)).group_by(
                Invoice.status
            )
        )
    ).all():
        by_status[InvoiceStatus(status)] = Tally(int(count), int(cents))
    count, cents = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(Invoice.total_cents), 0)).where(
                Invoice.status == InvoiceStatus.issued, Invoice.due_at < now
            )
        )
    ).one()
    rows = (
        await session.execute(
            select(Invoice, Tenant.name)
            .join(Tenant, Tenant.id == Invoice.tenant_id)
            .order_by(Invoice.issued_at.desc(), Invoice.number.desc())
            .limit(latest)
        )
    ).all()
    return InvoiceSummary(
        by_status,
        Tally(int(count), int(cents)),
        [
            InvoiceRow(
                i.id,
                i.number,
                i.tenant_id,
                name,
                i.period_start,
                i.period_end,
                i.total_cents,
                i.status,
                i.due_at,
                i.status is InvoiceStatus.issued and i.due_at < now,
            )
            for i, name in rows
        ],
    )


@dataclass(frozen=True)
class LowBalance:
    tenant_id: uuid.UUID
    name: str
    billing_mode: BillingMode
    balance_cents: int
    reserved_cents: int
    threshold_cents: int
    alerted: bool


@dataclass(frozen=True)
class WalletSummary:
    wallets: int
    balance_cents: int
    reserved_cents: int
    low: list[LowBalance]
    low_count: int


async def wallet_summary(session: AsyncSession, *, settings: Settings) -> WalletSummary:
    """What all business wallets hold, and the businesses below their low-balance level.

    "Below" is CommissionService.check_low_balance's rule: the wallet balance under the business's
    threshold (or the platform's). Listed: wallet-mode businesses (with or without a wallet yet) and
    hybrid ones that have a wallet; invoice and subscription billing do not draw on a wallet."""
    wallets, balance, reserved = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(Account.balance_cents), 0),
                func.coalesce(func.sum(Account.reserved_cents), 0),
            )
            .join(Tenant, Tenant.id == Account.tenant_id)
            .where(Account.kind == AccountKind.wallet, Tenant.kind != TenantKind.platform)
        )
    ).one()
    held = func.coalesce(Account.balance_cents, 0)
    threshold = func.coalesce(Tenant.low_balance_threshold_cents, settings.LOW_BALANCE_THRESHOLD_CENTS)
    where = (
        Tenant.kind != TenantKind.platform,
        or_(
            Tenant.billing_mode == BillingMode.wallet,
            and_(Tenant.billing_mode == BillingMode.hybrid, Account.id.is_not(None)),
        ),
        held < threshold,
    )
    joined = and_(Account.tenant_id == Tenant.id, Account.kind == AccountKind.wallet)
    low_count = await session.scalar(
        select(func.count()).select_from(Tenant).outerjoin(Account, joined).where(*where)
    )
    rows = (
        await session.execute(
            select(
                Tenant.id,
                Tenant.name,
                Tenant.billing_mode,
                held,
                func.coalesce(Account.reserved_cents, 0),
                threshold,
                Tenant.low_balance_alerted,
            )
            .outerjoin(Account, joined)
            .where(*where)
            .order_by(held, Tenant.name, Tenant.id)
            .limit(LIST_LIMIT)
        )
    ).all()
    return WalletSummary(
        int(wallets),
        int(balance),
        int(reserved),
        [
            LowBalance(tid, name, BillingMode(mode), int(bal), int(res), int(limit), bool(alerted))
            for tid, name, mode, bal, res, limit, alerted in rows
        ],
        int(low_count or 0),
    )


@dataclass(frozen=True)
class PlanRevenue:
    plan_id: uuid.UUID
    name: str
    period: SubscriptionPeriod
    paid: Tally
    reversed: Tally

    @property
    def net_kes(self) -> int:
        return self.paid.cents - self.reversed.cents


@dataclass(frozen=True)
class Lapsing:
    tenant_id: uuid.UUID
    name: str
    until: datetime | None
    lapsed: bool


@dataclass(frozen=True)
class SubscriptionReport:
    """Whole shillings here (`Tally.cents` holds KES): Pesapal orders are priced in shillings."""

    plans: list[PlanRevenue]
    lapsing: list[Lapsing]

    @property
    def paid(self) -> Tally:
        return Tally(sum(p.paid.count for p in self.plans), sum(p.paid.cents for p in self.plans))

    @property
    def reversed(self) -> Tally:
        return Tally(sum(p.reversed.count for p in self.plans), sum(p.reversed.cents for p in self.plans))

    @property
    def net_count(self) -> int:
        return self.paid.count - self.reversed.count

    @property
    def net_kes(self) -> int:
        return self.paid.cents - self.reversed.cents


async def subscription_report(session: AsyncSession, *, period: Period, now: datetime) -> SubscriptionReport:
    """Subscription orders paid (applied) in the period, less those reversed in it, per plan; and the
    providers whose subscription has lapsed or lapses within 7 days."""
    plans: dict[uuid.UUID, dict[str, Any]] = {}

    async def tally(stamp: Any, key: str) -> None:
        for pid, name, plan_period, count, kes in (
            await session.execute(
                select(
                    SubscriptionPlan.id,
                    SubscriptionPlan.name,
                    SubscriptionPlan.period,
                    func.count(),
                    func.coalesce(func.sum(SubscriptionOrder.amount), 0),
                )
                .join(SubscriptionPlan, SubscriptionPlan.id == SubscriptionOrder.plan_id)
                .where(stamp >= period.since, stamp < period.until)
                .group_by(SubscriptionPlan.id, SubscriptionPlan.name, SubscriptionPlan.period)
            )
        ).all():
            slot = plans.setdefault(pid, {"name": name, "period": plan_period})
            slot[key] = Tally(int(count), int(kes))

    await tally(SubscriptionOrder.applied_at, "paid")
    await tally(SubscriptionOrder.reversed_at, "reversed")
    out = [
        PlanRevenue(
            pid,
            s["name"],
            SubscriptionPeriod(s["period"]),
            s.get("paid", Tally()),
            s.get("reversed", Tally()),
        )
        for pid, s in plans.items()
    ]
    out.sort(key=lambda p: (-p.net_kes, p.name))
    providers = list(
        await session.scalars(
            select(Tenant)
            .where(
                Tenant.kind == TenantKind.hotspot,
                Tenant.billing_mode == BillingMode.subscription,
                or_(Tenant.subscription_until.is_(None), Tenant.subscription_until <= now + LAPSING_WITHIN),
            )
            .limit(LIST_LIMIT)
        )
    )
    lapsing = [Lapsing(t.id, t.name, t.subscription_until, is_lapsed(t, now)) for t in providers]
    lapsing.sort(key=lambda x: (x.until is not None, x.until or now, x.name))
    return SubscriptionReport(out, lapsing)
