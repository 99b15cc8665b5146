"""Platform admin: the error log, the audit trail and the message outbox. Read-only pages; a filter
that cannot be understood is shown next to its field and the page lists nothing rather than guessing."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from core.audit import reports
from core.errors import InvalidInput
from core.notify.models import SECRET_KINDS, NotifyChannel, NotifyStatus
from core.runtime import unit_of_work
from web.panel.forms import choice, int_cursor
from web.panel.security import CurrentViewer, admin_only
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Query(max_length=120)]
UNLISTED = "Choose one of the listed values."


def _days(raw: str, errors: dict[str, str]) -> int:
    if not raw:
        return 7
    if not raw.isdigit() or not 1 <= int(raw) <= reports.MAX_DAYS:
        errors["days"] = f"Choose a period of 1 to {reports.MAX_DAYS} days."
        return 7
    return int(raw)


async def _tenant(session: Any, raw: str, errors: dict[str, str]) -> uuid.UUID | None:
    try:
        tenant = await reports.resolve_tenant(session, raw)
    except InvalidInput as exc:
        errors["tenant"] = exc.message
        return None
    return tenant.id if tenant else None


@router.get("/admin/errors", response_class=HTMLResponse)
async def error_log(
    request: Request, viewer: CurrentViewer, tenant: Text = "", days: Text = ""
) -> HTMLResponse:
    admin_only(viewer)
    errors: dict[str, str] = {}
    period = _days(days, errors)
    log = None
    async with unit_of_work(readonly=True) as session:
        tenant_id = await _tenant(session, tenant, errors)
        if not errors:
            log = await reports.error_log(session, days=period, tenant_id=tenant_id)
    return render(
        request,
        "admin/errors.html",
        {"log": log, "errors": errors, "form": {"tenant": tenant, "days": period}},
        viewer=viewer,
        status=422 if errors else 200,
    )


@router.get("/admin/audit", response_class=HTMLResponse)
async def audit(
    request: Request,
    viewer: CurrentViewer,
    category: Text = "",
    action: Text = "",
    tenant: Text = "",
    email: Text = "",
    before: Text = "",
) -> HTMLResponse:
    admin_only(viewer)
    errors: dict[str, str] = {}
    if category and category not in reports.AUDIT_CATEGORIES:
        errors["category"] = "Choose one of the listed categories."
    cursor = int_cursor(before, errors)
    page = None
    async with unit_of_work(readonly=True) as session:
        tenant_id = await _tenant(session, tenant, errors)
        if not errors:
            page = await reports.audit_page(
                session, category=category, action=action, tenant_id=tenant_id, email=email, before=cursor
            )
    form = {"category": category, "action": action, "tenant": tenant, "email": email}
    return render(
        request,
        "admin/audit.html",
        {"page": page, "errors": errors, "form": form, "categories": list(reports.AUDIT_CATEGORIES)},
        viewer=viewer,
        status=422 if errors else 200,
    )


@router.get("/admin/outbox", response_class=HTMLResponse)
async def outbox(
    request: Request,
    viewer: CurrentViewer,
    channel: Text = "",
    status: Text = "",
    tenant: Text = "",
    recipient: Text = "",
    before: Text = "",
) -> HTMLResponse:
    admin_only(viewer)
    errors: dict[str, str] = {}
    chosen_channel = choice(NotifyChannel, channel, "channel", errors, UNLISTED)
    chosen_status = choice(NotifyStatus, status, "status", errors, UNLISTED)
    cursor = int_cursor(before, errors)
    page = None
    async with unit_of_work(readonly=True) as session:
        tenant_id = await _tenant(session, tenant, errors)
        if not errors:
            page = await reports.outbox_page(
                session,
                channel=chosen_channel,
                status=chosen_status,
                tenant_id=tenant_id,
                recipient=recipient,
                before=cursor,
            )
    form = {"channel": channel, "status": status, "tenant": tenant, "recipient": recipient}
    return render(
        request,
        "admin/outbox.html",
        {
            "page": page,
            "errors": errors,
            "form": form,
            "channels": [c.value for c in NotifyChannel],
            "statuses": [s.value for s in NotifyStatus],
            "secret_kinds": SECRET_KINDS,
        },
        viewer=viewer,
        status=422 if errors else 200,
    )
