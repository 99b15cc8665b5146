"""What the platform administrator's landing page reads: today at a glance and what needs attention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.audit.reports import FAILED_CALLBACK_OUTCOMES, UNDELIVERED
from core.billing.reports import commissions_total
from core.db import utcnow
from core.hotspot.models import Router, RouterStatus
from core.jobs.models import JobOutbox
from core.notify.models import Notification
from core.payments.models import CUSTOMER_SOURCES, CallbackInbox, Payment, PaymentStatus
from core.tenants.models import Tenant, TenantKind, TenantStatus

EAT = ZoneInfo("Africa/Nairobi")


@dataclass(frozen=True)
class PlatformOverview:
    tenants: dict[TenantStatus, int]  # businesses and providers by status
    today: dict[str, int | None]  # payments, collected, success_rate (%), commission_cents since EAT midnight
    attention: dict[str, int]  # failed_jobs, callbacks and messages in the last 24 h, routers_down


@use_case(Permission.platform_admin, query=True)
async def platform_overview(actor: Actor, *, now: datetime | None = None) -> PlatformOverview:
    now = now or utcnow()
    midnight = datetime.combine(now.astimezone(EAT).date(), time.min, tzinfo=EAT)
    day_ago = now - timedelta(hours=24)
    async with unit_of_work(actor, readonly=True) as uow:
        session = uow.session
        by_status = dict(
            (
                await session.execute(
                    select(Tenant.status, func.count())
                    .where(Tenant.kind != TenantKind.platform)
                    .group_by(Tenant.status)
                )
            ).all()
        )
        paid = Payment.status == PaymentStatus.success
        count, succeeded, collected = (
            await session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(case((paid, 1), else_=0)), 0),
                    func.coalesce(func.sum(case((paid, Payment.amount), else_=0)), 0),
                ).where(Payment.created_at >= midnight, Payment.source.in_(CUSTOMER_SOURCES))
            )
        ).one()

        async def counted(stmt):  # type: ignore[no-untyped-def]
            return int(await session.scalar(stmt) or 0)

        return PlatformOverview(
            tenants=by_status,
            today={
                "payments": count,
                "collected": collected,
                "success_rate": round(100 * succeeded / count) if count else None,
                "commission_cents": await commissions_total(session, since=midnight),
            },
            attention={
                "failed_jobs": await counted(
                    select(func.count()).select_from(JobOutbox).where(JobOutbox.failed_at.is_not(None))
                ),
                "callbacks": await counted(
                    select(func.count())
                    .select_from(CallbackInbox)
                    .where(
                        CallbackInbox.received_at >= day_ago,
                        CallbackInbox.outcome.in_(FAILED_CALLBACK_OUTCOMES),
                    )
                ),
                "messages": await counted(
                    select(func.count())
                    .select_from(Notification)
                    .where(Notification.created_at >= day_ago, Notification.status.in_(UNDELIVERED))
                ),
                "routers_down": await counted(
                    select(func.count()).select_from(Router).where(Router.status == RouterStatus.down)
                ),
            },
        )
