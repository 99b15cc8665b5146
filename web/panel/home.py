"""The platform admin's landing page (/admin): today at a glance and what needs attention, each figure
linking to the page that explains it. The business dashboard (/app) is in app_business."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from core.tenants.use_cases_admin import platform_overview
from web.panel.security import CurrentViewer, admin_only
from web.panel.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/admin", response_class=HTMLResponse)
async def admin_home(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    admin_only(viewer)
    o = await platform_overview(viewer.actor)
    return render(
        request,
        "admin/home.html",
        {"tenants": o.tenants, "today": o.today, "attention": o.attention},
        viewer=viewer,
    )
