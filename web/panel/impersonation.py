"""“View as this business”: a platform admin sees a business's panel as its owner would, read-only
unless they ask for write access with a reason. Starting, widening and ending it are audit-logged, as
is every request made meanwhile (web.panel.security)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record
from core.auth import panel_sessions
from core.auth.panel_sessions import PanelSession
from core.db import utcnow
from core.errors import InvalidInput
from core.runtime import unit_of_work
from core.tenants.service import tenants
from web.panel.security import CurrentViewer, Viewer, admin_only

router = APIRouter(include_in_schema=False)


async def _row(session: AsyncSession, viewer: Viewer) -> PanelSession:
    row = await panel_sessions.row_for(session, viewer.token)
    assert row is not None  # the viewer dependency just loaded it
    return row


@router.post("/admin/tenants/{tenant_id}/impersonate")
async def start(tenant_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    admin_only(viewer)
    async with unit_of_work() as session:
        tenant = await tenants.get(session, tenant_id)  # 404 for an unknown id
        row = await _row(session, viewer)
        row.as_tenant_id, row.as_since, row.as_write, row.as_reason = tenant.id, utcnow(), False, None
        await record(session, action="impersonation.start", tenant_id=tenant.id, user_id=viewer.user_id)
    return RedirectResponse("/app", status_code=303)


@router.post("/admin/impersonation/write")
async def allow_write(
    viewer: CurrentViewer, reason: Annotated[str, Form(max_length=300)] = ""
) -> RedirectResponse:
    admin_only(viewer)
    reason = " ".join(reason.split())
    if len(reason) < 5:
        raise InvalidInput(
            "reason", "Say why you need to change this business's data (at least 5 characters)."
        )
    async with unit_of_work() as session:
        row = await _row(session, viewer)
        if not panel_sessions.impersonating(row):
            raise InvalidInput("reason", "You are not viewing a business right now.")
        row.as_write, row.as_reason = True, reason
        await record(
            session,
            action="impersonation.write",
            tenant_id=row.as_tenant_id,
            user_id=viewer.user_id,
            detail={"reason": reason},
        )
    return RedirectResponse("/app", status_code=303)


@router.post("/admin/impersonation/stop")
async def stop(viewer: CurrentViewer) -> RedirectResponse:
    admin_only(viewer)
    async with unit_of_work() as session:
        row = await _row(session, viewer)
        tenant_id = row.as_tenant_id
        panel_sessions.end_impersonation(row)
        if tenant_id is not None:
            await record(session, action="impersonation.stop", tenant_id=tenant_id, user_id=viewer.user_id)
    target = f"/admin/tenants/{tenant_id}" if tenant_id else "/admin"
    return RedirectResponse(target, status_code=303)
