"""Platform-side figures for the admin panel: commissions collected by period and by tenant, invoices
and their state, wallet balances and the low-balance list, and subscription revenue."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.commission import commissions
from core.billing.integrity import COMMISSION_KINDS
from core.billing.models import (
    Invoice,
    InvoiceStatus,
    SubscriptionOrder,
    SubscriptionPeriod,
    SubscriptionPlan,
)
from core.billing.subscriptions import is_lapsed
from core.config import Settings
from core.errors import InvalidInput
from core.ledger.models import Account, AccountKind, Transfer
from core.tenants.models import BillingMode, Tenant, TenantKind


@dataclass(frozen=True)
class TenantCommission:
    tenant_id: uuid.UUID
    name: str
    from_wallet_cents: int
    on_invoice_cents: int

    @property
    def total_cents(self) -> int:
        return self.from_wallet_cents + self.on_invoice_cents


async def commissions_by_tenant(
    session: AsyncSession, *, since: datetime | None = None, until: datetime | None = None
) -> list[TenantCommission]:
    conds: list[ColumnElement[bool]] = [Transfer.kind.in_(COMMISSION_KINDS)]
    if since is not None:
        conds.append(Transfer.created_at >= since)
    if until is not None:
        conds.append(Transfer.created_at < until)
    rows = (
        await session.execute(
            select(Transfer.tenant_id, Tenant.name, Transfer.kind, func.sum(Transfer.amount_cents))
            .join(Tenant, Tenant.id == Transfer.tenant_id)
            .where(*conds)
            .group_by(Transfer.tenant_id, Tenant.name, Transfer.kind)
        )
    ).all()
    out: dict[uuid.UUID, TenantCommission] = {}
    for tid, name, kind, cents in rows:
        cur = out.get(tid, TenantCommission(tid, name, 0, 0))
        if kind == "commission.wallet":
            cur = TenantCommission(tid, name, cur.from_wallet_cents + int(cents), cur.on_invoice_cents)
        else:
            cur = TenantCommission(tid, name, cur.from_wallet_cents, cur.on_invoice_cents + int(cents))
        out[tid] = cur
    return sorted(out.values(), key=lambda c: -c.total_cents)


async def commissions_total(
    session: AsyncSession, *, since: datetime | None = None, until: datetime | None = None
) -> int:
    return sum(c.total_cents for c in await commissions_by_tenant(session, since=since, until=until))


# --- the admin's Commissions page: one period, five small reports ------------------------------------

EAT = ZoneInfo("Africa/Nairobi")
MAX_PERIOD_DAYS = 366
DAILY_UP_TO_DAYS = 62  # a longer period is charted by month
LAPSING_WITHIN = timedelta(days=7)
LIST_LIMIT = 200


def eat_midnight(day: date) -> datetime:
    """The start of a Nairobi calendar day, as an aware datetime."""
    return datetime.combine(day, time.min, tzinfo=EAT)


@dataclass(frozen=True)
class Period:
    """Nairobi calendar days `first`..`last`, both included; `preset` names how it was chosen."""

    first: date
    last: date
    preset: str = "custom"

    @property
    def since(self) -> datetime:
        return eat_midnight(self.first)

    @property
    def until(self) -> datetime:
        return eat_midnight(self.last + timedelta(days=1))

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


PRESETS = {"this_month": "This month", "last_month": "Last month", "last_7_days": "Last 7 days"}


def preset_period(preset: str, *, today: date) -> Period:
    """This month (to today), last month (whole), or the last 7 days (today included)."""
    if preset == "this_month":
        return Period(today.replace(day=1), today, preset)
    if preset == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return Period(last.replace(day=1), last, preset)
    if preset == "last_7_days":
        return Period(today - timedelta(days=6), today, preset)
    raise InvalidInput("period", "Choose one of the listed periods.")


def custom_period(first: date, last: date) -> Period:
    if last < first:
        raise InvalidInput("to", "The end date is before the start date.")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise InvalidInput("to", f"Choose a period of at most {MAX_PERIOD_DAYS} days.")
    return Period(first, last)


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
                select(day, func.sum(Transfer.amount_cents))
                .where(
                    Transfer.kind.in_(COMMISSION_KINDS),
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
