"""Platform admin → Businesses: find a business or hotspot provider, look it over, suspend or reactivate
it with a reason, set its commission rate and the platform default, and assign its API plan. The rules
are core's (core.tenants.use_cases_admin, core.plans.use_cases_admin); this module parses forms and
renders pages."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.access.permissions import Permission
from core.errors import InvalidInput, NotFound
from core.plans import use_cases_admin as plan_admin
from core.tenants import use_cases_admin as admin
from core.tenants.admin import REASON_MAX, REASON_MIN
from core.tenants.models import TenantKind, TenantStatus
from web.panel.admin_access import admin_actor
from web.panel.admin_plans import paid_until_of, tenant_plan
from web.panel.forms import page_url, parse_day
from web.panel.security import CurrentViewer, Viewer
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

# Flash messages by key: the query string names one, it never carries text of its own.
DONE = {
    "suspended": "Suspended. Its pushes are refused from every channel; the owner was told by "
    "Telegram (or SMS) and email.",
    "reactivated": "Reactivated. The owner was told by Telegram (or SMS) and email.",
    "commission": "Commission rate saved.",
    "default": "Platform default commission saved.",
    "plan": "Plan assigned: its limits apply from the business's next payment request.",
}
PAID_UNTIL_HINT = "Give the last day paid as a date like 2027-01-31, or leave it empty."


def _enum(cls: Any, value: str | None) -> Any:
    try:
        return cls(value) if value else None
    except ValueError:
        return None


async def _list_page(
    request: Request,
    viewer: Viewer,
    *,
    q: str = "",
    status: str = "",
    kind: str = "",
    page: int = 1,
    done: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    code: int = 200,
) -> HTMLResponse:
    result = await admin.search_tenants(
        admin_actor(viewer), q=q, status=_enum(TenantStatus, status), kind=_enum(TenantKind, kind), page=page
    )
    filters = {k: v for k, v in {"q": q.strip(), "status": status, "kind": kind}.items() if v}
    return render(
        request,
        "admin/tenants.html",
        {
            "result": result,
            "q": q,
            "status": status,
            "kind": kind,
            "statuses": list(TenantStatus),
            "prev_url": page_url("", filters, page=result.page - 1) if result.page > 1 else None,
            "next_url": page_url("", filters, page=result.page + 1) if result.page < result.pages else None,
            "done": DONE.get(done or ""),
            "errors": errors or {},
            "values": values or {},
        },
        viewer=viewer,
        status=code,
    )


@router.get("/admin/tenants", response_class=HTMLResponse)
async def tenant_list(
    request: Request,
    viewer: CurrentViewer,
    q: Annotated[str, Query(max_length=120)] = "",
    status: str = "",
    kind: str = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    done: str | None = None,
) -> HTMLResponse:
    return await _list_page(request, viewer, q=q, status=status, kind=kind, page=page, done=done)


@router.post("/admin/commission-default", response_model=None)
async def commission_default(
    request: Request, viewer: CurrentViewer, percent: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    try:
        await admin.set_default_commission(admin_actor(viewer), percent=percent)
    except InvalidInput as exc:
        return await _list_page(
            request, viewer, errors={"default": exc.message}, values={"default": percent}, code=422
        )
    return RedirectResponse("/admin/tenants?done=default", status_code=303)


async def _detail_page(
    request: Request,
    viewer: Viewer,
    tenant_id: uuid.UUID,
    *,
    done: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    code: int = 200,
) -> HTMLResponse:
    detail = await admin.tenant_detail(admin_actor(viewer), tenant_id)
    return render(
        request,
        "admin/tenant.html",
        {
            "d": detail,
            "t": detail.tenant,
            "done": DONE.get(done or ""),
            "errors": errors or {},
            "values": values or {},
            "reason_min": REASON_MIN,
            "reason_max": REASON_MAX,
            **await tenant_plan(viewer, tenant_id),
        },
        viewer=viewer,
        status=code,
    )


@router.get("/admin/tenants/{tenant_id}", response_class=HTMLResponse)
async def tenant_detail(
    request: Request, tenant_id: uuid.UUID, viewer: CurrentViewer, done: str | None = None
) -> HTMLResponse:
    return await _detail_page(request, viewer, tenant_id, done=done)


async def _change(
    request: Request,
    viewer: Viewer,
    tenant_id: uuid.UUID,
    change: Awaitable[object],
    *,
    field: str,
    value: str,
    done: str,
) -> Response:
    """One change on a business's page: done, back to the page saying so; refused, the page again with
    the reason next to the form `field` and what was typed in it."""
    try:
        await change
    except InvalidInput as exc:
        return await _detail_page(
            request, viewer, tenant_id, errors={field: exc.message}, values={field: value}, code=422
        )
    return RedirectResponse(f"/admin/tenants/{tenant_id}?done={done}", status_code=303)


@router.post("/admin/tenants/{tenant_id}/suspend", response_model=None)
async def suspend(
    request: Request,
    tenant_id: uuid.UUID,
    viewer: CurrentViewer,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    change = admin.suspend_tenant(admin_actor(viewer), tenant_id, reason=reason)
    return await _change(request, viewer, tenant_id, change, field="suspend", value=reason, done="suspended")


@router.post("/admin/tenants/{tenant_id}/reactivate", response_model=None)
async def reactivate(
    request: Request,
    tenant_id: uuid.UUID,
    viewer: CurrentViewer,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    change = admin.reactivate_tenant(admin_actor(viewer), tenant_id, reason=reason)
    return await _change(
        request, viewer, tenant_id, change, field="reactivate", value=reason, done="reactivated"
    )


@router.post("/admin/tenants/{tenant_id}/commission", response_model=None)
async def commission(
    request: Request,
    tenant_id: uuid.UUID,
    viewer: CurrentViewer,
    percent: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    change = admin.set_commission_rate(admin_actor(viewer), tenant_id, percent=percent)
    return await _change(
        request, viewer, tenant_id, change, field="commission", value=percent, done="commission"
    )


@router.post("/admin/tenants/{tenant_id}/plan", response_model=None)
async def assign_plan(
    request: Request,
    tenant_id: uuid.UUID,
    viewer: CurrentViewer,
    code: Annotated[str, Form(max_length=40)] = "",
    paid_until: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Any plan, hidden ones too. `paid_until`: the last Nairobi day a plan with a fee counts as paid
    (a deal agreed outside the wallet); empty, the owner pays it as usual."""
    actor = admin_actor(viewer)
    actor.require(Permission.platform_admin)  # before the form's own errors
    errors: dict[str, str] = {}
    day = parse_day(paid_until, "plan", errors, PAID_UNTIL_HINT)
    if not code.strip():
        errors["plan"] = "Choose a plan from the list."
    values = {"plan": code, "plan_paid_until": paid_until}
    if errors:
        return await _detail_page(request, viewer, tenant_id, errors=errors, values=values, code=422)
    try:
        await plan_admin.assign_plan(actor, tenant_id, code=code, paid_until=paid_until_of(day))
    except NotFound as exc:  # a plan gone from a stale page; an unknown business is 404 on the page too
        return await _detail_page(
            request, viewer, tenant_id, errors={"plan": exc.message}, values=values, code=404
        )
    return RedirectResponse(f"/admin/tenants/{tenant_id}?done=plan#plan", status_code=303)
