"""WiFi plans (/app/wifi/plans): the list, create, edit and delete, with errors by the field. Vouchers
already sold keep the terms they were sold with."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from core.access.permissions import Permission
from core.errors import Conflict
from core.hotspot import use_cases_plans as plan_cases
from core.hotspot.models import PlanKind
from core.hotspot.provision import validity_text
from core.hotspot.schemas import PlanIn
from core.money import stk_max_amount
from web.panel.app_wifi import done_message, provider
from web.panel.forms import parse_uuid, parse_whole
from web.panel.security import CurrentViewer, Viewer
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

UNITS = {"minutes": 1, "hours": 60, "days": 1440}
# The plan form's fields, by PlanIn's field names.
PLAN_FIELDS = {"validity_minutes": "duration", "kind": "kind", "router_id": "router_id"}


def _plan_values(plan: Any | None) -> dict[str, str]:
    if plan is None:
        return {
            "name": "",
            "kind": "time",
            "price": "",
            "duration": "1",
            "unit": "hours",
            "data_mb": "",
            "rate_limit": "",
            "devices": "1",
            "router_id": "",
            "active": "on",
            "sort_order": "0",
        }
    minutes = plan.validity_minutes
    unit = next(u for u in ("days", "hours", "minutes") if minutes % UNITS[u] == 0)
    return {
        "name": plan.name,
        "kind": plan.kind.value,
        "price": str(plan.price),
        "duration": str(minutes // UNITS[unit]),
        "unit": unit,
        "data_mb": str(plan.data_mb or ""),
        "rate_limit": plan.rate_limit or "",
        "devices": str(plan.devices),
        "router_id": str(plan.router_id or ""),
        "active": "on" if plan.active else "",
        "sort_order": str(plan.sort_order),
    }


def plan_input(form: dict[str, str]) -> tuple[PlanIn | None, dict[str, str]]:
    """The plan form as PlanIn, or a message for each field that is wrong."""
    errors: dict[str, str] = {}
    price = parse_whole(form["price"])
    if price is None:
        errors["price"] = "Type the price in whole shillings, like 20."
    elif not 1 <= price <= stk_max_amount():
        errors["price"] = f"The price is from KES 1 to KES {stk_max_amount():,}."
    amount = parse_whole(form["duration"])
    mult = UNITS.get(form["unit"])
    minutes = None
    if mult is None:
        errors["duration"] = "Choose minutes, hours or days."
    elif amount is None:
        errors["duration"] = "Type how long the plan lasts as a whole number, like 1 (hour) or 30 (minutes)."
    else:
        minutes = amount * mult
        if not 5 <= minutes <= 366 * 1440:
            errors["duration"] = "A plan lasts from 5 minutes to 366 days."
    data_mb = None
    if form["data_mb"].strip():
        data_mb = parse_whole(form["data_mb"])
        if data_mb is None or not 1 <= data_mb <= 10_000_000:
            errors["data_mb"] = "Type the data allowance in whole MB, like 1024 for 1 GB."
    devices = parse_whole(form["devices"])
    if devices is None or not 1 <= devices <= 20:
        errors["devices"] = "One voucher can be used on 1 to 20 devices at once."
    sort_order = parse_whole(form["sort_order"] or "0")
    if sort_order is None:
        errors["sort_order"] = "Type a whole number (smaller numbers are listed first)."
    if form["kind"] not in {k.value for k in PlanKind}:
        errors["kind"] = "Choose time or data."
    router_id = parse_uuid(form["router_id"], "router_id", errors, "Choose a router from the list.")
    if errors:
        return None, errors
    try:
        data = PlanIn(
            name=" ".join(form["name"].split()),
            kind=PlanKind(form["kind"]),
            price=price,
            validity_minutes=minutes,
            data_mb=data_mb,
            rate_limit=form["rate_limit"].strip() or None,
            devices=devices,
            router_id=router_id,
            active=form["active"] == "on",
            sort_order=sort_order,
        )
    except ValidationError as exc:
        for e in exc.errors():
            field = str(e["loc"][0]) if e["loc"] else "data_mb"  # the model check: a data plan's MB
            field = PLAN_FIELDS.get(field, field)
            msg = str(e["msg"]).removeprefix("Value error, ")
            if field == "name":
                msg = "Give the plan a name of up to 40 characters, like “1 hour”."
            errors.setdefault(field, msg)
        return None, errors
    return data, errors


async def _plans_page(
    request: Request,
    viewer: Viewer,
    *,
    editing: uuid.UUID | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    seen = await plan_cases.plans_view(provider(viewer), editing=editing)
    return render(
        request,
        "app/wifi_plans.html" if editing is None else "app/wifi_plan.html",
        {
            "plans": seen.plans,
            "routers": seen.router_names,
            "plan": seen.plan,
            "form": values or _plan_values(seen.plan),
            "errors": errors or {},
            "units": list(UNITS),
            "kinds": [k.value for k in PlanKind],
            "validity": validity_text,
            "done": done_message(request),
            "section": "plans",
        },
        viewer=viewer,
        status=status,
    )


async def _plan_form(request: Request) -> dict[str, str]:
    """The plan form's fields as posted (absent ones as an unticked box or empty), each cut to 80."""
    raw = await request.form()
    form = {k: str(raw.get(k, "")).strip()[:80] for k in _plan_values(None)}
    form["name"] = str(raw.get("name", ""))[:80]
    return form


async def _save_plan(request: Request, viewer: Viewer, plan_id: uuid.UUID | None) -> Response:
    actor = provider(viewer, Permission.hotspot_manage)
    form = await _plan_form(request)
    data, errors = plan_input(form)
    if data is None:
        # Another provider's plan is 404 here too: the edit page does not find it.
        return await _plans_page(request, viewer, editing=plan_id, values=form, errors=errors, status=422)
    try:
        if plan_id is None:
            await plan_cases.create_plan(actor, data)
        else:
            await plan_cases.update_plan(actor, plan_id, data)
    except Conflict as exc:
        return await _plans_page(
            request, viewer, editing=plan_id, values=form, errors={"name": exc.message}, status=422
        )
    return RedirectResponse(
        f"/app/wifi/plans?done={'plan_saved' if plan_id else 'plan_created'}", status_code=303
    )


@router.get("/app/wifi/plans", response_class=HTMLResponse)
async def plan_list(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _plans_page(request, viewer)


@router.get("/app/wifi/plans/{plan_id}", response_class=HTMLResponse)
async def plan_edit(request: Request, plan_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    return await _plans_page(request, viewer, editing=plan_id)


@router.post("/app/wifi/plans", response_model=None)
async def plan_create(request: Request, viewer: CurrentViewer) -> Response:
    return await _save_plan(request, viewer, None)


@router.post("/app/wifi/plans/{plan_id}", response_model=None)
async def plan_update(request: Request, plan_id: uuid.UUID, viewer: CurrentViewer) -> Response:
    return await _save_plan(request, viewer, plan_id)


@router.post("/app/wifi/plans/{plan_id}/delete")
async def plan_delete(plan_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    await plan_cases.delete_plan(provider(viewer), plan_id)
    return RedirectResponse("/app/wifi/plans?done=plan_deleted", status_code=303)
