"""API usage across every business, for the platform admin: who calls the API how much, who is near
their plan's quota, whose keys are being refused. One grouped read of the request log (its
`created_at` index bounds it to this month) and one of this month's live-push counts; the figures
are counted as core.usage.service counts them for one business, so the two views agree.

Businesses with no request and no live push this month are left out (a platform has many quiet
ones); hotspot providers are listed when they use the API, with "no quota" (plans limit only
businesses, core.payments.push)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.plans.models import ApiPlan, PlanUsage
from core.plans.service import is_paid, month_of, plans
from core.tenants.models import Tenant, TenantKind
from core.usage.models import ApiRequest
from core.usage.schemas import BusinessUsage, PlatformUsage
from core.usage.service import count_where, is_push, month_label, month_start


async def across_businesses(
    session: AsyncSession, *, limit: int, search: str | None = None, now: datetime | None = None
) -> PlatformUsage:
    """`search`: only the businesses whose name or slug holds it (the totals still count them all)."""
    now = now or utcnow()
    day_start, mon_start = now - timedelta(hours=24), month_start(now)
    in_day, in_month = ApiRequest.created_at >= day_start, ApiRequest.created_at >= mon_start
    grouped = await session.execute(
        select(
            ApiRequest.tenant_id,
            count_where(in_day),
            count_where(in_month),
            count_where(and_(in_month, is_push())),
            count_where(and_(in_month, ApiRequest.status_code >= 400)),
            count_where(and_(in_day, ApiRequest.status_code == 401)),
        )
        .where(ApiRequest.created_at >= min(day_start, mon_start))
        .group_by(ApiRequest.tenant_id)
    )
    counts: dict[uuid.UUID, tuple[int, ...]] = {row[0]: tuple(int(n) for n in row[1:]) for row in grouped}
    month = month_of(now)
    live = dict(
        (
            await session.execute(
                select(PlanUsage.tenant_id, PlanUsage.live_pushes).where(PlanUsage.month == month)
            )
        ).all()
    )
    ids = set(counts) | {t for t, n in live.items() if n}
    default = await plans.default(session)
    by_id = {p.id: p for p in await session.scalars(select(ApiPlan))}
    rows: list[BusinessUsage] = []
    if ids:
        for tenant in await session.scalars(select(Tenant).where(Tenant.id.in_(ids))):
            day, month_requests, pushes, failures, refused = counts.get(tenant.id, (0, 0, 0, 0, 0))
            chosen = by_id.get(tenant.plan_id) if tenant.plan_id is not None else None
            chosen = chosen or default
            paid = is_paid(chosen, tenant, now)
            effective = chosen if paid else default
            limited = tenant.kind == TenantKind.business
            rows.append(
                BusinessUsage(
                    tenant_id=tenant.id,
                    name=tenant.name,
                    slug=tenant.slug,
                    kind=tenant.kind.value,
                    plan=effective.name if limited else None,
                    plan_unpaid=limited and not paid,
                    requests_24h=day,
                    refused_keys_24h=refused,
                    requests_month=month_requests,
                    api_pushes_month=pushes,
                    failures_month=failures,
                    live_pushes_month=int(live.get(tenant.id, 0)),
                    live_push_quota=effective.live_pushes_per_month if limited else None,
                )
            )
    rows.sort(key=lambda r: (-r.requests_month, -r.live_pushes_month, r.name.lower()))
    needle = (search or "").strip().lower()
    shown = [r for r in rows if needle in r.name.lower() or needle in r.slug] if needle else rows
    return PlatformUsage(
        month=month_label(now),
        businesses=len(rows),
        requests_24h=sum(r.requests_24h for r in rows),
        requests_month=sum(r.requests_month for r in rows),
        live_pushes_month=sum(r.live_pushes_month for r in rows),
        matching=len(shown),
        rows=shown[:limit],
    )
