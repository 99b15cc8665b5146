"""The platform admin's landing page (/admin). The business dashboard (/app) is in app_business."""

from __future__ import annotations

from datetime import datetime, time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from core.jobs.models import JobOutbox
from core.payments.models import Payment
from core.runtime import unit_of_work
from core.tenants.models import Tenant, TenantKind
from web.panel.security import CurrentViewer, admin_only
from web.panel.templating import EAT, render

router = APIRouter(include_in_schema=False)


@router.get("/admin", response_class=HTMLResponse)
async def admin_home(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    admin_only(viewer)
    midnight = datetime.combine(datetime.now(EAT).date(), time.min, tzinfo=EAT)
    async with unit_of_work(readonly=True) as session:
        counts = {
            "tenants": await session.scalar(
                select(func.count()).select_from(Tenant).where(Tenant.kind != TenantKind.platform)
            ),
            "payments_today": await session.scalar(
                select(func.count()).select_from(Payment).where(Payment.created_at >= midnight)
            ),
            "failed_jobs": await session.scalar(
                select(func.count()).select_from(JobOutbox).where(JobOutbox.failed_at.is_not(None))
            ),
        }
    return render(request, "admin/home.html", {"counts": counts}, viewer=viewer)
