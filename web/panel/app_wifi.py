"""WiFi for hotspot providers (/app/wifi): the overview with the subscription, sales over a period,
and what the other WiFi pages share (the provider check, the audit row, the messages after a change;
their form parsing is web.panel.forms). The plans, vouchers and routers pages are app_wifi_plans,
app_wifi_vouchers and app_wifi_routers.

The same services and rules as the API (web/api/hotspot.py, web/api/subscriptions.py) and the bot's
📶 WiFi: owner and manager; adding a router and paying the subscription are the owner's. A business
that is not a hotspot provider has no WiFi pages (404). An impersonating admin reads; writing needs
the banner's write access, and every change is audit-logged."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record
from core.auth.models import Role
from core.billing.pesapal import PesapalError
from core.billing.subscriptions import is_lapsed, last_order, order_of, start_order, subscriptions
from core.db import utcnow
from core.errors import NotFound
from core.hotspot.reports import provider_day, provider_period, today_eat
from core.runtime import unit_of_work
from core.tenants.models import BillingMode
from core.tenants.service import tenants
from web.panel.forms import day_range, parse_uuid
from web.panel.security import CurrentViewer, Viewer, business
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

MANAGERS = (Role.owner, Role.manager)
MAX_PERIOD_DAYS = 366
NOT_A_PROVIDER = (
    "WiFi is for hotspot providers. This business collects M-Pesa payments only; ask lipapush support "
    "to set it up as a hotspot provider."
)
DONE = {
    "plan_created": "Plan created.",
    "plan_saved": "Plan saved. Vouchers already sold keep the terms they were sold with.",
    "plan_deleted": "Plan deleted. Vouchers already sold keep working on their terms.",
    "issued": "Vouchers issued. Each works once its router has it (status “provisioned”).",
    "revoked": "Voucher revoked: it is being taken off its router now.",
    "texted": "The voucher's code is being texted to the buyer again.",
    "resent": "The voucher is being written to its router again.",
    "router_added": "Router added. Test the connection, then download the setup script.",
}


# -- shared by the WiFi pages -----------------------------------------------------------------------
def provider(viewer: Viewer, *roles: Role, write: bool = False) -> uuid.UUID:
    """The role check (403), then: WiFi pages exist for hotspot providers only (404)."""
    tenant_id = business(viewer, *(roles or MANAGERS), write=write)
    if not viewer.hotspot:
        raise NotFound(NOT_A_PROVIDER)
    return tenant_id


async def audit(
    session: AsyncSession, viewer: Viewer, tenant_id: uuid.UUID, action: str, target: str, **detail: Any
) -> None:
    await record(
        session,
        action=action,
        tenant_id=tenant_id,
        user_id=viewer.user_id,
        target=target[:200],
        detail={**detail, "via": "panel", "impersonating": viewer.impersonating},
    )


def done_message(request: Request) -> str | None:
    """What the last change did, from the redirect's ?done=."""
    return DONE.get(request.query_params.get("done", ""))


# -- overview and subscription ----------------------------------------------------------------------
def subscription_state(tenant: Any) -> dict[str, Any]:
    """As GET /api/providers/{id}/subscription-status says it: active, paid until, days left."""
    until = tenant.subscription_until
    now = utcnow()
    return {
        "on_subscription": tenant.billing_mode is BillingMode.subscription,
        "active": until is not None and not is_lapsed(tenant, now) and until > now,
        "lapsed": is_lapsed(tenant, now),
        "paid_until": until,
        "days_left": max(0, (until - now).days) if until else None,
    }


async def _overview(
    request: Request, viewer: Viewer, tenant_id: uuid.UUID, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    today = today_eat()
    async with unit_of_work(readonly=True) as session:
        tenant = await tenants.get(session, tenant_id)
        day = await provider_day(session, tenant_id=tenant_id, day=today)
        month = await provider_period(
            session, tenant_id=tenant_id, first=today - timedelta(days=29), last=today
        )
        offered = await subscriptions.plans(session)
        last = await last_order(session, tenant_id=tenant_id)
        sub = subscription_state(tenant)
    health = day.routers
    return render(
        request,
        "app/wifi.html",
        {
            "day": day,
            "month": month,
            "routers": health,
            "up": sum(1 for r in health if r.status.value == "up"),
            "down": sum(1 for r in health if r.status.value == "down"),
            "online": sum(r.online or 0 for r in health),
            "in_use": sum(r.active for r in health),
            "waiting": sum(r.waiting for r in health),
            "sub": sub,
            "offered": offered,
            "last_order": last,
            "is_owner": viewer.business_role is Role.owner,
            "error": error,
            "section": "overview",
        },
        viewer=viewer,
        status=status,
    )


@router.get("/app/wifi", response_class=HTMLResponse)
async def overview(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = provider(viewer)
    return await _overview(request, viewer, tenant_id)


@router.post("/app/wifi/subscription", response_model=None)
async def renew(
    request: Request, viewer: CurrentViewer, plan_id: Annotated[str, Form(max_length=64)] = ""
) -> Response:
    """Start a subscription order at Pesapal, as the bot's 💳 and
    POST /api/providers/{id}/pesapal/create-order do."""
    tenant_id = provider(viewer, Role.owner, write=True)
    errors: dict[str, str] = {}
    chosen = parse_uuid(plan_id, "plan", errors, "Choose a subscription plan from the list.")
    if chosen is None:
        return await _overview(
            request, viewer, tenant_id, error=errors.get("plan", "Choose a plan."), status=422
        )
    try:
        order = await start_order(
            tenant_id=tenant_id,
            plan_id=chosen,
            by=viewer.user_id,
            audit_detail={"via": "panel", "impersonating": viewer.impersonating},
        )
    except PesapalError as exc:
        return await _overview(
            request, viewer, tenant_id, error=f"Pesapal could not take the order: {exc.message}", status=503
        )
    except NotFound as exc:
        return await _overview(request, viewer, tenant_id, error=exc.message, status=422)
    return RedirectResponse(f"/app/wifi/subscription/{order.id}", status_code=303)


@router.get("/app/wifi/subscription/{order_id}", response_class=HTMLResponse)
async def subscription_order(request: Request, order_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = provider(viewer, Role.owner)
    async with unit_of_work(readonly=True) as session:
        order = await order_of(session, tenant_id=tenant_id, order_id=order_id)
        tenant = await tenants.get(session, tenant_id)
        sub = subscription_state(tenant)
    return render(
        request, "app/wifi_order.html", {"o": order, "sub": sub, "section": "overview"}, viewer=viewer
    )


# -- sales ------------------------------------------------------------------------------------------
@router.get("/app/wifi/sales", response_class=HTMLResponse)
async def sales(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    """Voucher sales over a period (East African days): the figures of core.hotspot.reports, as the
    bot's day view and the admin's GET /api/hotspot/sales count them."""
    tenant_id = provider(viewer)
    form = {
        "from": request.query_params.get("from", "")[:20],
        "to": request.query_params.get("to", "")[:20],
    }
    errors: dict[str, str] = {}
    first, last = day_range(
        form["from"], form["to"], errors, max_days=MAX_PERIOD_DAYS, today=today_eat(), default_days=30
    )
    assert first is not None and last is not None  # with `today`, both ends have a value
    period = None
    if not errors:
        async with unit_of_work(readonly=True) as session:
            period = await provider_period(session, tenant_id=tenant_id, first=first, last=last)
    return render(
        request,
        "app/wifi_sales.html",
        {
            "form": form,
            "errors": errors,
            "period": period,
            "first": first,
            "last": last,
            "section": "sales",
        },
        viewer=viewer,
        status=422 if errors else 200,
    )
