"""The platform admin's landing page (/admin): today at a glance and what needs attention, each figure
linking to the page that explains it. The business dashboard (/app) is in app_business."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import case, func, select

from core.audit.reports import FAILED_CALLBACK_OUTCOMES, UNDELIVERED
from core.billing.reports import commissions_total
from core.db import utcnow
from core.hotspot.models import Router, RouterStatus
from core.jobs.models import JobOutbox
from core.notify.models import Notification
from core.payments.models import CUSTOMER_SOURCES, CallbackInbox, Payment, PaymentStatus
from core.runtime import unit_of_work
from core.tenants.models import Tenant, TenantKind
from web.panel.security import CurrentViewer, admin_only
from web.panel.templating import EAT, render

router = APIRouter(include_in_schema=False)


@router.get("/admin", response_class=HTMLResponse)
async def admin_home(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    admin_only(viewer)
    midnight = datetime.combine(datetime.now(EAT).date(), time.min, tzinfo=EAT)
    day_ago = utcnow() - timedelta(hours=24)
    async with unit_of_work(readonly=True) as session:
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
        today = {
            "payments": count,
            "collected": collected,
            "success_rate": round(100 * succeeded / count) if count else None,
            "commission_cents": await commissions_total(session, since=midnight),
        }
        attention = {
            "failed_jobs": await session.scalar(
                select(func.count()).select_from(JobOutbox).where(JobOutbox.failed_at.is_not(None))
            ),
            "callbacks": await session.scalar(
                select(func.count())
                .select_from(CallbackInbox)
                .where(
                    CallbackInbox.received_at >= day_ago,
                    CallbackInbox.outcome.in_(FAILED_CALLBACK_OUTCOMES),
                )
            ),
            "messages": await session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.created_at >= day_ago, Notification.status.in_(UNDELIVERED))
            ),
            "routers_down": await session.scalar(
                select(func.count()).select_from(Router).where(Router.status == RouterStatus.down)
            ),
        }
    return render(
        request,
        "admin/home.html",
        {"tenants": by_status, "today": today, "attention": attention},
        viewer=viewer,
    )
