"""WiFi for hotspot providers (/app/wifi): the overview with the subscription, sales over a period,
and what the other WiFi pages share (the provider page gate, the messages after a change;
their form parsing is web.panel.forms). The plans, vouchers and routers pages are app_wifi_plans,
app_wifi_vouchers and app_wifi_routers.

Every page calls the use cases the API (web/api/hotspot.py) and the bot's 📶 WiFi call
(core.hotspot.use_cases*), which decide who may do what and write the audit rows: owner and manager;
adding a router and paying the subscription are the owner's. A business that is not a hotspot
provider has no WiFi pages (404). An impersonating admin reads; writing needs the banner's write
access."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.access.actor import Actor
from core.access.permissions import Permission
from core.errors import DarajaUnavailable, NotFound
from core.hotspot import use_cases_provider as provider_cases
from core.hotspot.reports import today_eat
from core.hotspot.use_cases import NOT_A_PROVIDER
from web.panel.forms import day_range, parse_uuid
from web.panel.security import CurrentViewer, Viewer
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

MAX_PERIOD_DAYS = 366
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
def provider(viewer: Viewer, before: Permission | None = None) -> Actor:
    """The viewer's actor, on a page that exists for hotspot providers only (404 for another
    business). Who may do what is core's: the use case a page calls refuses (403). A form page names
    its use case's permission as `before`, so core refuses before the form is read, not after."""
    actor = viewer.actor
    if before is not None:
        actor.require(before)
    if viewer.tenant_id is not None and not viewer.hotspot:
        raise NotFound(NOT_A_PROVIDER)
    return actor


def done_message(request: Request) -> str | None:
    """What the last change did, from the redirect's ?done=."""
    return DONE.get(request.query_params.get("done", ""))


# -- overview and subscription ----------------------------------------------------------------------
async def _overview(
    request: Request, viewer: Viewer, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    o = await provider_cases.wifi_overview(provider(viewer))
    health = o.day.routers
    return render(
        request,
        "app/wifi.html",
        {
            "day": o.day,
            "month": o.month,
            "routers": health,
            "up": sum(1 for r in health if r.status.value == "up"),
            "down": sum(1 for r in health if r.status.value == "down"),
            "online": sum(r.online or 0 for r in health),
            "in_use": sum(r.active for r in health),
            "waiting": sum(r.waiting for r in health),
            "sub": o.sub,
            "offered": o.offered,
            "last_order": o.last_order,
            "is_owner": viewer.actor.shows(Permission.subscription_manage),
            "error": error,
            "section": "overview",
        },
        viewer=viewer,
        status=status,
    )


@router.get("/app/wifi", response_class=HTMLResponse)
async def overview(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _overview(request, viewer)


@router.post("/app/wifi/subscription", response_model=None)
async def renew(
    request: Request, viewer: CurrentViewer, plan_id: Annotated[str, Form(max_length=64)] = ""
) -> Response:
    """Start a subscription order at Pesapal, as the bot's 💳 and
    POST /api/providers/{id}/pesapal/create-order do."""
    actor = provider(viewer, Permission.subscription_manage)
    errors: dict[str, str] = {}
    chosen = parse_uuid(plan_id, "plan", errors, "Choose a subscription plan from the list.")
    if chosen is None:
        return await _overview(request, viewer, error=errors.get("plan", "Choose a plan."), status=422)
    try:
        order = await provider_cases.start_subscription_order(actor, chosen)
    except NotFound as exc:  # the form's choice: 422 here
        return await _overview(request, viewer, error=exc.message, status=422)
    except DarajaUnavailable as exc:  # Pesapal could not take the order (503)
        return await _overview(request, viewer, error=exc.message, status=exc.status)
    return RedirectResponse(f"/app/wifi/subscription/{order.id}", status_code=303)


@router.get("/app/wifi/subscription/{order_id}", response_class=HTMLResponse)
async def subscription_order(request: Request, order_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    seen = await provider_cases.subscription_order(provider(viewer), order_id)
    return render(
        request,
        "app/wifi_order.html",
        {"o": seen.order, "sub": seen.sub, "section": "overview"},
        viewer=viewer,
    )


# -- sales ------------------------------------------------------------------------------------------
@router.get("/app/wifi/sales", response_class=HTMLResponse)
async def sales(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    """Voucher sales over a period (East African days): the figures of core.hotspot.reports, as the
    bot's day view and the admin's GET /api/hotspot/sales count them."""
    actor = provider(viewer, Permission.hotspot_overview)
    form = {
        "from": request.query_params.get("from", "")[:20],
        "to": request.query_params.get("to", "")[:20],
    }
    errors: dict[str, str] = {}
    first, last = day_range(
        form["from"], form["to"], errors, max_days=MAX_PERIOD_DAYS, today=today_eat(), default_days=30
    )
    assert first is not None and last is not None  # with `today`, both ends have a value
    period = await provider_cases.wifi_sales(actor, first=first, last=last) if not errors else None
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
