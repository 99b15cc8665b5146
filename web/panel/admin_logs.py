"""Platform admin: the error log, the audit trail and the message outbox. Read-only pages; a filter
that cannot be understood is shown next to its field and the page lists nothing rather than guessing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from core.audit import reports
from core.audit import use_cases_admin as admin
from core.notify.models import SECRET_KINDS, NotifyChannel, NotifyStatus
from web.panel.admin_access import admin_actor
from web.panel.forms import choice, int_cursor
from web.panel.security import CurrentViewer
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


@router.get("/admin/errors", response_class=HTMLResponse)
async def error_log(
    request: Request, viewer: CurrentViewer, tenant: Text = "", days: Text = ""
) -> HTMLResponse:
    errors: dict[str, str] = {}
    period = _days(days, errors)
    found = await admin.error_log(admin_actor(viewer), tenant=tenant, days=period, list_rows=not errors)
    errors.update(found.errors)
    log = found.found
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
    key: Text = "",
    before: Text = "",
) -> HTMLResponse:
    errors: dict[str, str] = {}
    cursor = int_cursor(before, errors)
    found = await admin.audit_trail(
        admin_actor(viewer),
        category=category,
        action=action,
        tenant=tenant,
        email=email,
        key=key,
        before=cursor,
        list_rows=not errors,
    )
    errors = {**found.errors, **errors}
    page = found.found
    form = {"category": category, "action": action, "tenant": tenant, "email": email, "key": key}
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
    errors: dict[str, str] = {}
    chosen_channel = choice(NotifyChannel, channel, "channel", errors, UNLISTED)
    chosen_status = choice(NotifyStatus, status, "status", errors, UNLISTED)
    cursor = int_cursor(before, errors)
    found = await admin.message_outbox(
        admin_actor(viewer),
        channel=chosen_channel,
        status=chosen_status,
        tenant=tenant,
        recipient=recipient,
        before=cursor,
        list_rows=not errors,
    )
    errors.update(found.errors)
    page = found.found
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
