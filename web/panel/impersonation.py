"""“View as this business”: a platform admin sees a business's panel as its owner would, read-only
unless they ask for write access with a reason. Starting, widening and ending it are audit-logged, as
is every request made meanwhile (web.panel.security); the rules are core.auth.use_cases_admin's."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse

from core.auth import use_cases_admin as admin
from web.panel.admin_access import admin_actor
from web.panel.security import CurrentViewer

router = APIRouter(include_in_schema=False)


@router.post("/admin/tenants/{tenant_id}/impersonate")
async def start(tenant_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    await admin.start_impersonation(admin_actor(viewer), tenant_id, panel_token=viewer.token)
    return RedirectResponse("/app", status_code=303)


@router.post("/admin/impersonation/write")
async def allow_write(
    viewer: CurrentViewer, reason: Annotated[str, Form(max_length=300)] = ""
) -> RedirectResponse:
    await admin.allow_impersonation_writes(admin_actor(viewer), panel_token=viewer.token, reason=reason)
    return RedirectResponse("/app", status_code=303)


@router.post("/admin/impersonation/stop")
async def stop(viewer: CurrentViewer) -> RedirectResponse:
    tenant_id = await admin.stop_impersonation(admin_actor(viewer), panel_token=viewer.token)
    target = f"/admin/tenants/{tenant_id}" if tenant_id else "/admin"
    return RedirectResponse(target, status_code=303)
