"""What a hotspot provider and the platform admin look at: sales, routers, subscriptions.

A *sale* is a voucher bought through lipapush (portal or USSD: it has a payment). Printed batch cards
are counted apart, as `cards`: the shop sells them for cash, so lipapush never sees that money.
Days are East African days (the provider's day, not UTC's).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.subscriptions import is_lapsed, trial_only
from core.db import utcnow
from core.hotspot.models import Router, RouterStatus, Voucher, VoucherStatus
from core.tenants.models import BillingMode, Tenant, TenantKind, TenantStatus

EAT = ZoneInfo("Africa/Nairobi")


def day_start(day: date) -> datetime:
    """Midnight in Nairobi, as an aware datetime."""
    return datetime.combine(day, time.min, tzinfo=EAT)


def today_eat(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(EAT).date()


@dataclass(frozen=True)
class Sales:
    vouchers: int
    kes: int


@dataclass(frozen=True)
class PlanSales:
    plan: str
    vouchers: int
    kes: int


@dataclass(frozen=True)
class RouterHealth:
    id: uuid.UUID
    name: str
    status: RouterStatus
    online: int | None  # sessions the router itself reported at the last check
    active: int  # vouchers in use by our records
    waiting: int  # paid or printed, not yet acknowledged by the router
    last_seen_at: datetime | None
    last_error: str | None
    version: str | None


@dataclass(frozen=True)
class ProviderDay:
    day: date
    sales: Sales
    by_plan: list[PlanSales]
    cards: int
    routers: list[RouterHealth]


async def _sales(
    session: AsyncSession, *, since: datetime, until: datetime, tenant_id: uuid.UUID | None = None
) -> dict[uuid.UUID, Sales]:
    q = (
        select(Voucher.tenant_id, func.count(), func.coalesce(func.sum(Voucher.price), 0))
        .where(Voucher.payment_id.is_not(None), Voucher.issued_at >= since, Voucher.issued_at < until)
        .group_by(Voucher.tenant_id)
    )
    if tenant_id is not None:
        q = q.where(Voucher.tenant_id == tenant_id)
    return {tid: Sales(int(n), int(kes)) for tid, n, kes in (await session.execute(q)).all()}


async def router_health(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[RouterHealth]:
    counts = {
        rid: (int(active), int(waiting))
        for rid, active, waiting in (
            await session.execute(
                select(
                    Voucher.router_id,
                    func.sum(case((Voucher.status == VoucherStatus.active, 1), else_=0)),
                    func.sum(case((Voucher.status == VoucherStatus.issued, 1), else_=0)),
                )
                .where(
                    Voucher.tenant_id == tenant_id,
                    Voucher.status.in_([VoucherStatus.active, VoucherStatus.issued]),
                )
                .group_by(Voucher.router_id)
            )
        ).all()
    }
    rows = await session.scalars(select(Router).where(Router.tenant_id == tenant_id).order_by(Router.name))
    return [
        RouterHealth(
            id=r.id,
            name=r.name,
            status=r.status,
            online=r.active_sessions,
            active=counts.get(r.id, (0, 0))[0],
            waiting=counts.get(r.id, (0, 0))[1],
            last_seen_at=r.last_seen_at,
            last_error=r.last_error,
            version=r.version,
        )
        for r in rows
    ]


async def _provider_sales(
    session: AsyncSession, *, tenant_id: uuid.UUID, since: datetime, until: datetime
) -> tuple[Sales, list[PlanSales], int]:
    """Paid sales, paid sales by plan (most sold first) and printed cards issued in [since, until)."""
    sold = (await _sales(session, since=since, until=until, tenant_id=tenant_id)).get(tenant_id, Sales(0, 0))
    in_period = (Voucher.tenant_id == tenant_id, Voucher.issued_at >= since, Voucher.issued_at < until)
    by_plan = [
        PlanSales(name, int(n), int(kes))
        for name, n, kes in (
            await session.execute(
                select(Voucher.plan_name, func.count(), func.coalesce(func.sum(Voucher.price), 0))
                .where(*in_period, Voucher.payment_id.is_not(None))
                .group_by(Voucher.plan_name)
                .order_by(func.count().desc(), Voucher.plan_name)
            )
        ).all()
    ]
    cards = await session.scalar(select(func.count()).where(*in_period, Voucher.batch_id.is_not(None)))
    return sold, by_plan, int(cards or 0)


async def provider_day(
    session: AsyncSession, *, tenant_id: uuid.UUID, day: date | None = None
) -> ProviderDay:
    """A provider's day (today by default): sales, sales by plan, cards printed, routers."""
    day = day or today_eat()
    sold, by_plan, cards = await _provider_sales(
        session, tenant_id=tenant_id, since=day_start(day), until=day_start(day + timedelta(days=1))
    )
    return ProviderDay(
        day=day,
        sales=sold,
        by_plan=by_plan,
        cards=cards,
        routers=await router_health(session, tenant_id=tenant_id),
    )


# -- the platform admin's view ------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderOverview:
    id: uuid.UUID
    name: str
    slug: str
    status: TenantStatus
    billing_mode: BillingMode
    subscription_until: datetime | None
    subscription: str  # active | trial (nothing paid yet) | lapsed | none (not on a subscription)
    routers: int
    routers_up: int
    routers_down: int
    sales: Sales


async def providers(session: AsyncSession, *, since: datetime, until: datetime) -> list[ProviderOverview]:
    """Every hotspot provider with its subscription, router counts and sales in [since, until)."""
    tenants = list(
        await session.scalars(select(Tenant).where(Tenant.kind == TenantKind.hotspot).order_by(Tenant.name))
    )
    router_counts = {
        tid: (int(total), int(up), int(down))
        for tid, total, up, down in (
            await session.execute(
                select(
                    Router.tenant_id,
                    func.count(),
                    func.sum(case((Router.status == RouterStatus.up, 1), else_=0)),
                    func.sum(case((Router.status == RouterStatus.down, 1), else_=0)),
                ).group_by(Router.tenant_id)
            )
        ).all()
    }
    sales = await _sales(session, since=since, until=until)
    now = utcnow()
    out = []
    for t in tenants:
        total, up, down = router_counts.get(t.id, (0, 0, 0))
        if t.billing_mode is not BillingMode.subscription:
            state = "none"
        else:
            state = "lapsed" if is_lapsed(t, now) else "trial" if trial_only(t) else "active"
        out.append(
            ProviderOverview(
                id=t.id,
                name=t.name,
                slug=t.slug,
                status=t.status,
                billing_mode=t.billing_mode,
                subscription_until=t.subscription_until,
                subscription=state,
                routers=total,
                routers_up=up,
                routers_down=down,
                sales=sales.get(t.id, Sales(0, 0)),
            )
        )
    return out


@dataclass(frozen=True)
class RouterOverview:
    id: uuid.UUID
    tenant_id: uuid.UUID
    provider: str
    name: str
    host: str
    status: RouterStatus
    online: int | None
    version: str | None
    last_seen_at: datetime | None
    last_error: str | None


async def all_routers(session: AsyncSession, *, status: RouterStatus | None = None) -> list[RouterOverview]:
    """Every provider's routers, down ones first (what an operator looks at)."""
    q = (
        select(Router, Tenant.name)
        .join(Tenant, Tenant.id == Router.tenant_id)
        .order_by(case((Router.status == RouterStatus.down, 0), else_=1), Tenant.name, Router.name)
    )
    if status is not None:
        q = q.where(Router.status == status)
    return [
        RouterOverview(
            id=r.id,
            tenant_id=r.tenant_id,
            provider=provider,
            name=r.name,
            host=r.host,
            status=r.status,
            online=r.active_sessions,
            version=r.version,
            last_seen_at=r.last_seen_at,
            last_error=r.last_error,
        )
        for r, provider in (await session.execute(q)).all()
    ]


@dataclass(frozen=True)
class DailySales:
    tenant_id: uuid.UUID
    provider: str
    day: date
    vouchers: int
    kes: int


async def daily_sales(
    session: AsyncSession, *, first: date, last: date, tenant_id: uuid.UUID | None = None
) -> list[DailySales]:
    """Voucher sales per provider per East African day, first..last inclusive (days with none left out).
    Grouped in Python: the day boundary is Nairobi's, which neither backend's date functions share.
    `tenant_id`: one provider's days only."""
    q = (
        select(Voucher.tenant_id, Tenant.name, Voucher.issued_at, Voucher.price)
        .join(Tenant, Tenant.id == Voucher.tenant_id)
        .where(
            Voucher.payment_id.is_not(None),
            Voucher.issued_at >= day_start(first),
            Voucher.issued_at < day_start(last + timedelta(days=1)),
        )
    )
    if tenant_id is not None:
        q = q.where(Voucher.tenant_id == tenant_id)
    rows = (await session.execute(q)).all()
    totals: dict[tuple[uuid.UUID, str, date], list[int]] = {}
    for tid, name, at, price in rows:
        slot = totals.setdefault((tid, name, at.astimezone(EAT).date()), [0, 0])
        slot[0] += 1
        slot[1] += price
    return [
        DailySales(tid, name, day, n, kes)
        for (tid, name, day), (n, kes) in sorted(totals.items(), key=lambda kv: (kv[0][2], kv[0][1]))
    ]


# -- one provider over a period (the business view's WiFi sales page) -----------------------------


@dataclass(frozen=True)
class ProviderPeriod:
    first: date
    last: date
    sales: Sales
    by_plan: list[PlanSales]
    cards: int
    days: list[DailySales]


async def provider_period(
    session: AsyncSession, *, tenant_id: uuid.UUID, first: date, last: date
) -> ProviderPeriod:
    """A provider's sales from `first` to `last` (East African days, inclusive): the same figures as
    `provider_day` for each day, and `daily_sales` per day."""
    sold, by_plan, cards = await _provider_sales(
        session, tenant_id=tenant_id, since=day_start(first), until=day_start(last + timedelta(days=1))
    )
    return ProviderPeriod(
        first=first,
        last=last,
        sales=sold,
        by_plan=by_plan,
        cards=cards,
        days=await daily_sales(session, first=first, last=last, tenant_id=tenant_id),
    )
