"""WiFi for hotspot providers (/app/wifi): overview with the subscription, plans, vouchers (filters,
keyset pages, printed batches, revoke, text again), routers (add, test connection, setup script) and
sales over a period.

The same services and rules as the API (web/api/hotspot.py, web/api/subscriptions.py) and the bot's
📶 WiFi: owner and manager; adding a router and paying the subscription are the owner's. A business
that is not a hotspot provider has no WiFi pages (404). An impersonating admin reads; writing needs
the banner's write access, and every change is audit-logged."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record
from core.auth.models import Role
from core.billing.pesapal import PesapalError
from core.billing.subscriptions import is_lapsed, last_order, order_of, start_order, subscriptions
from core.db import utcnow
from core.errors import Conflict, InvalidInput, NotFound
from core.hotspot.models import PlanKind, Voucher, VoucherStatus
from core.hotspot.plans import plans
from core.hotspot.provision import check_router, validity_text
from core.hotspot.reports import provider_day, provider_period, today_eat
from core.hotspot.routers import routers
from core.hotspot.schemas import PlanIn, RouterIn
from core.hotspot.setup_script import setup_script
from core.hotspot.sheets import batch_xlsx, sheet
from core.hotspot.vouchers import MAX_BATCH, vouchers
from core.runtime import runtime, unit_of_work
from core.tenants.models import BillingMode
from core.tenants.service import tenants
from web.exports import audited_xlsx
from web.panel.security import CurrentViewer, Viewer, business
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

MANAGERS = (Role.owner, Role.manager)
PAGE = 50
MAX_PERIOD_DAYS = 366
NOT_A_PROVIDER = (
    "WiFi is for hotspot providers. This business collects M-Pesa payments only; ask lipapush support "
    "to set it up as a hotspot provider."
)
UNITS = {"minutes": 1, "hours": 60, "days": 1440}
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
# The plan form's fields, by PlanIn's field names.
PLAN_FIELDS = {"validity_minutes": "duration", "kind": "kind", "router_id": "router_id"}


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


def _uuid(raw: str, field: str, errors: dict[str, str], message: str) -> uuid.UUID | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        errors[field] = message
        return None


def _whole(raw: str) -> int | None:
    text = raw.replace(",", "").replace(" ", "").strip()
    if text.upper().startswith("KES"):
        text = text[3:]
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _done(request: Request) -> str | None:
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
    chosen = _uuid(plan_id, "plan", errors, "Choose a subscription plan from the list.")
    if chosen is None:
        return await _overview(
            request, viewer, tenant_id, error=errors.get("plan", "Choose a plan."), status=422
        )
    try:
        order = await start_order(tenant_id=tenant_id, plan_id=chosen)
    except PesapalError as exc:
        return await _overview(
            request, viewer, tenant_id, error=f"Pesapal could not take the order: {exc.message}", status=503
        )
    except NotFound as exc:
        return await _overview(request, viewer, tenant_id, error=exc.message, status=422)
    async with unit_of_work() as session:
        await audit(
            session, viewer, tenant_id, "subscription.order_started", str(order.id), amount=order.amount
        )
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


# -- plans ------------------------------------------------------------------------------------------
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
    price = _whole(form["price"])
    if price is None:
        errors["price"] = "Type the price in whole shillings, like 20."
    elif not 1 <= price <= 250_000:
        errors["price"] = "The price is from KES 1 to KES 250,000."
    amount = _whole(form["duration"])
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
        data_mb = _whole(form["data_mb"])
        if data_mb is None or not 1 <= data_mb <= 10_000_000:
            errors["data_mb"] = "Type the data allowance in whole MB, like 1024 for 1 GB."
    devices = _whole(form["devices"])
    if devices is None or not 1 <= devices <= 20:
        errors["devices"] = "One voucher can be used on 1 to 20 devices at once."
    sort_order = _whole(form["sort_order"] or "0")
    if sort_order is None:
        errors["sort_order"] = "Type a whole number (smaller numbers are listed first)."
    if form["kind"] not in {k.value for k in PlanKind}:
        errors["kind"] = "Choose time or data."
    router_id = _uuid(form["router_id"], "router_id", errors, "Choose a router from the list.")
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
    tenant_id: uuid.UUID,
    *,
    editing: uuid.UUID | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    async with unit_of_work(readonly=True) as session:
        mine = await plans.list(session, tenant_id=tenant_id)
        boxes = {r.id: r.name for r in await routers.list(session, tenant_id=tenant_id)}
        plan = await plans.get(session, tenant_id=tenant_id, plan_id=editing) if editing else None
    return render(
        request,
        "app/wifi_plans.html" if editing is None else "app/wifi_plan.html",
        {
            "plans": mine,
            "routers": boxes,
            "plan": plan,
            "form": values or _plan_values(plan),
            "errors": errors or {},
            "units": list(UNITS),
            "kinds": [k.value for k in PlanKind],
            "validity": validity_text,
            "done": _done(request),
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


async def _save_plan(
    request: Request, viewer: Viewer, tenant_id: uuid.UUID, form: dict[str, str], plan_id: uuid.UUID | None
) -> Response:
    data, errors = plan_input(form)
    if data is None:
        return await _plans_page(
            request, viewer, tenant_id, editing=plan_id, values=form, errors=errors, status=422
        )
    try:
        async with unit_of_work() as session:
            plan = await plans.save(session, tenant_id=tenant_id, data=data, plan_id=plan_id)
            await audit(
                session,
                viewer,
                tenant_id,
                "plan.updated" if plan_id else "plan.created",
                str(plan.id),
                name=plan.name,
                price=plan.price,
                validity_minutes=plan.validity_minutes,
            )
    except Conflict as exc:
        return await _plans_page(
            request, viewer, tenant_id, editing=plan_id, values=form, errors={"name": exc.message}, status=422
        )
    return RedirectResponse(
        f"/app/wifi/plans?done={'plan_saved' if plan_id else 'plan_created'}", status_code=303
    )


@router.get("/app/wifi/plans", response_class=HTMLResponse)
async def plan_list(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = provider(viewer)
    return await _plans_page(request, viewer, tenant_id)


@router.get("/app/wifi/plans/{plan_id}", response_class=HTMLResponse)
async def plan_edit(request: Request, plan_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = provider(viewer)
    return await _plans_page(request, viewer, tenant_id, editing=plan_id)


@router.post("/app/wifi/plans", response_model=None)
async def plan_create(request: Request, viewer: CurrentViewer) -> Response:
    tenant_id = provider(viewer, write=True)
    return await _save_plan(request, viewer, tenant_id, await _plan_form(request), None)


@router.post("/app/wifi/plans/{plan_id}", response_model=None)
async def plan_update(request: Request, plan_id: uuid.UUID, viewer: CurrentViewer) -> Response:
    tenant_id = provider(viewer, write=True)
    async with unit_of_work(readonly=True) as session:
        await plans.get(session, tenant_id=tenant_id, plan_id=plan_id)  # 404 before any form error
    return await _save_plan(request, viewer, tenant_id, await _plan_form(request), plan_id)


@router.post("/app/wifi/plans/{plan_id}/delete")
async def plan_delete(plan_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    tenant_id = provider(viewer, write=True)
    async with unit_of_work() as session:
        plan = await plans.delete(session, tenant_id=tenant_id, plan_id=plan_id)
        await audit(session, viewer, tenant_id, "plan.deleted", str(plan_id), name=plan.name)
    return RedirectResponse("/app/wifi/plans?done=plan_deleted", status_code=303)


# -- vouchers ---------------------------------------------------------------------------------------
async def _vouchers_page(
    request: Request,
    viewer: Viewer,
    tenant_id: uuid.UUID,
    *,
    filters: dict[str, str],
    cursor: str = "",
    issue: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    errors = dict(errors or {})
    wanted_status = None
    if filters["status"]:
        try:
            wanted_status = VoucherStatus(filters["status"])
        except ValueError:
            errors["status"] = "Choose a status from the list."
    plan_id = _uuid(filters["plan"], "plan", errors, "Choose a plan from the list.")
    if len(filters["code"]) > 32:
        errors["code"] = "A voucher code is at most 12 letters and digits."
    rows: list[Voucher] = []
    next_cursor = None
    async with unit_of_work(readonly=True) as session:
        mine = await plans.list(session, tenant_id=tenant_id)
        boxes = await routers.list(session, tenant_id=tenant_id)
        if not any(k in errors for k in ("status", "plan", "code")):
            try:
                rows, next_cursor = await vouchers.list_page(
                    session,
                    tenant_id=tenant_id,
                    status=wanted_status,
                    plan_id=plan_id,
                    code=filters["code"] or None,
                    cursor=cursor or None,
                    limit=PAGE,
                )
            except InvalidInput as exc:
                errors["cursor"] = exc.message
    if any(k in errors for k in ("status", "plan", "code", "cursor")):
        status = 422
    kept = {k: v for k, v in filters.items() if v}
    names = {r.id: r.name for r in boxes}
    return render(
        request,
        "app/wifi_vouchers.html",
        {
            "vouchers": rows,
            "router_names": names,
            "plans": mine,
            "routers": boxes,
            "filters": filters,
            "issue": issue
            or {
                "plan_id": "",
                "router_id": str(boxes[0].id) if len(boxes) == 1 else "",
                "count": "10",
            },
            "errors": errors,
            "statuses": [s.value for s in VoucherStatus],
            "max_batch": MAX_BATCH,
            "next_url": "/app/wifi/vouchers?" + urlencode({**kept, "cursor": next_cursor})
            if next_cursor
            else None,
            "first_url": "/app/wifi/vouchers" + ("?" + urlencode(kept) if kept else "") if cursor else None,
            "usable": vouchers.usable,
            "done": _done(request),
            "section": "vouchers",
        },
        viewer=viewer,
        status=status,
    )


@router.get("/app/wifi/vouchers", response_class=HTMLResponse)
async def voucher_list(
    request: Request,
    viewer: CurrentViewer,
    status: Annotated[str, Query(max_length=20)] = "",
    plan: Annotated[str, Query(max_length=64)] = "",
    code: Annotated[str, Query(max_length=64)] = "",
    cursor: Annotated[str, Query(max_length=300)] = "",
) -> HTMLResponse:
    tenant_id = provider(viewer)
    filters = {"status": status.strip(), "plan": plan.strip(), "code": code.strip()}
    return await _vouchers_page(request, viewer, tenant_id, filters=filters, cursor=cursor)


@router.post("/app/wifi/vouchers/batch", response_model=None)
async def voucher_batch(
    request: Request,
    viewer: CurrentViewer,
    plan_id: Annotated[str, Form(max_length=64)] = "",
    router_id: Annotated[str, Form(max_length=64)] = "",
    count: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Printed cards (POST /api/vouchers/batch and the bot's 🎟 Print vouchers)."""
    tenant_id = provider(viewer, write=True)
    issue = {"plan_id": plan_id.strip(), "router_id": router_id.strip(), "count": count.strip()}
    errors: dict[str, str] = {}
    plan = _uuid(issue["plan_id"], "plan_id", errors, "Choose a plan from the list.")
    box = _uuid(issue["router_id"], "router_id", errors, "Choose a router from the list.")
    if plan is None and "plan_id" not in errors:
        errors["plan_id"] = "Choose the plan the cards are for."
    if box is None and "router_id" not in errors:
        errors["router_id"] = "Choose the router the cards work on."
    n = _whole(issue["count"])
    if n is None or not 1 <= n <= MAX_BATCH:
        errors["count"] = f"Issue 1 to {MAX_BATCH} vouchers at a time."
    empty = {"status": "", "plan": "", "code": ""}
    if errors:
        return await _vouchers_page(
            request, viewer, tenant_id, filters=empty, issue=issue, errors=errors, status=422
        )
    assert plan is not None and box is not None and n is not None
    try:
        async with unit_of_work() as session:
            tenant = await tenants.get(session, tenant_id)
            r = await routers.get(session, tenant_id=tenant_id, router_id=box)
            p = await plans.get(session, tenant_id=tenant_id, plan_id=plan)
            batch, made = await vouchers.issue_batch(session, tenant=tenant, router=r, plan=p, count=n)
            await audit(session, viewer, tenant_id, "vouchers.batch", str(batch), count=len(made))
    except InvalidInput as exc:  # the plan is sold on another router only
        field = "plan_id" if exc.field == "plan_id" else "count"
        return await _vouchers_page(
            request, viewer, tenant_id, filters=empty, issue=issue, errors={field: exc.message}, status=422
        )
    return RedirectResponse(f"/app/wifi/vouchers/batches/{batch}?done=issued", status_code=303)


async def _batch(session: AsyncSession, tenant_id: uuid.UUID, batch_id: uuid.UUID) -> list[Voucher]:
    rows = list(
        await session.scalars(
            select(Voucher)
            .where(Voucher.tenant_id == tenant_id, Voucher.batch_id == batch_id)
            .order_by(Voucher.code)
        )
    )
    if not rows:
        raise NotFound("No such voucher batch.")
    return rows


@router.get("/app/wifi/vouchers/batches/{batch_id}", response_class=HTMLResponse)
async def batch_page(request: Request, batch_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = provider(viewer)
    async with unit_of_work(readonly=True) as session:
        rows = await _batch(session, tenant_id, batch_id)
        r = await routers.get(session, tenant_id=tenant_id, router_id=rows[0].router_id)
    waiting = sum(1 for v in rows if v.status is VoucherStatus.issued)
    return render(
        request,
        "app/wifi_batch.html",
        {
            "batch_id": batch_id,
            "vouchers": rows,
            "router_name": r.name,
            "waiting": waiting,
            "done": _done(request),
            "validity": validity_text,
            "section": "vouchers",
        },
        viewer=viewer,
    )


@router.get("/app/wifi/vouchers/batches/{batch_id}/print", response_class=HTMLResponse)
async def batch_print(
    batch_id: uuid.UUID,
    viewer: CurrentViewer,
    paper: Annotated[str, Query(max_length=10)] = "a4",
) -> HTMLResponse:
    """The printable sheet, as GET /api/vouchers/batches/{id}/print serves it (its own inline CSS for
    the printer, so not a panel page)."""
    tenant_id = provider(viewer)
    if paper not in ("a4", "58mm"):
        raise InvalidInput("paper", "Print on a4 or 58mm paper.")
    async with unit_of_work(readonly=True) as session:
        rows = await _batch(session, tenant_id, batch_id)
        tenant = await tenants.get(session, tenant_id)
        page = sheet(provider=tenant.name, vouchers=rows, paper=paper)
    return HTMLResponse(page, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


@router.get("/app/wifi/vouchers/batches/{batch_id}/export.xlsx", response_class=StreamingResponse)
async def batch_export(batch_id: uuid.UUID, viewer: CurrentViewer) -> StreamingResponse:
    """The same file as GET /api/vouchers/batches/{id}/export-excel, audited the same way."""
    tenant_id = provider(viewer)
    async with unit_of_work(readonly=True) as session:
        rows = await _batch(session, tenant_id, batch_id)
        for v in rows:
            session.expunge(v)
    path, count = await batch_xlsx(rows, directory=runtime().settings.EXPORT_DIR)
    return await audited_xlsx(
        path,
        rows=count,
        name="vouchers",
        action="export.vouchers",
        tenant_id=tenant_id,
        user_id=viewer.user_id,
    )


async def _voucher_code(tenant_id: uuid.UUID, voucher_id: uuid.UUID) -> str:
    async with unit_of_work(readonly=True) as session:
        return (await vouchers.get(session, tenant_id=tenant_id, voucher_id=voucher_id)).code


def _back_to(code: str, done: str) -> RedirectResponse:
    return RedirectResponse("/app/wifi/vouchers?" + urlencode({"code": code, "done": done}), status_code=303)


@router.post("/app/wifi/vouchers/{voucher_id}/revoke")
async def voucher_revoke(voucher_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    tenant_id = provider(viewer, write=True)
    code = await _voucher_code(tenant_id, voucher_id)
    async with unit_of_work() as session:
        # The service audits it (voucher.revoked), with this user.
        await vouchers.revoke(session, tenant_id=tenant_id, code=code, by=viewer.user_id)
    return _back_to(code, "revoked")


@router.post("/app/wifi/vouchers/{voucher_id}/text")
async def voucher_text(voucher_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    """Text a sold voucher's code to its buyer again."""
    tenant_id = provider(viewer, write=True)
    code = await _voucher_code(tenant_id, voucher_id)
    async with unit_of_work() as session:
        v = await vouchers.resend_sms(session, tenant_id=tenant_id, code=code)
        await audit(session, viewer, tenant_id, "voucher.sms_resent", code, phone=v.phone)
    return _back_to(code, "texted")


@router.post("/app/wifi/vouchers/{voucher_id}/resend")
async def voucher_resend(voucher_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    """Write a voucher to its router again (POST /api/tickets/{code}/activate): a buyer whose login fails."""
    tenant_id = provider(viewer, write=True)
    code = await _voucher_code(tenant_id, voucher_id)
    async with unit_of_work() as session:
        await vouchers.resend(session, tenant_id=tenant_id, code=code)
        await audit(session, viewer, tenant_id, "voucher.resent", code)
    return _back_to(code, "resent")


# -- routers ----------------------------------------------------------------------------------------
ROUTER_FIELDS = ("name", "host", "port", "username", "password", "tls", "hotspot_server")


async def _routers_page(
    request: Request,
    viewer: Viewer,
    tenant_id: uuid.UUID,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    tested = None
    async with unit_of_work(readonly=True) as session:
        boxes = await routers.list(session, tenant_id=tenant_id)
        raw = request.query_params.get("tested", "")
        if raw:
            tested = next((r for r in boxes if str(r.id) == raw), None)
    # The password is never put back into the form, not even after an error.
    form = {"name": "", "host": "", "port": "8728", "username": "", "tls": "", "hotspot_server": "hotspot1"}
    form.update({k: v for k, v in (values or {}).items() if k != "password"})
    return render(
        request,
        "app/wifi_routers.html",
        {
            "routers": boxes,
            "form": form,
            "errors": errors or {},
            "tested": tested,
            "is_owner": viewer.business_role is Role.owner,
            "done": _done(request),
            "section": "routers",
        },
        viewer=viewer,
        status=status,
    )


@router.get("/app/wifi/routers", response_class=HTMLResponse)
async def router_list(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = provider(viewer)
    return await _routers_page(request, viewer, tenant_id)


@router.post("/app/wifi/routers", response_model=None)
async def router_add(
    request: Request,
    viewer: CurrentViewer,
    name: Annotated[str, Form(max_length=100)] = "",
    host: Annotated[str, Form(max_length=300)] = "",
    port: Annotated[str, Form(max_length=10)] = "8728",
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    tls: Annotated[str, Form(max_length=5)] = "",
    hotspot_server: Annotated[str, Form(max_length=100)] = "hotspot1",
) -> Response:
    """Register a MikroTik router (POST /api/routers: the owner's). The password is encrypted by the
    service and never shown again."""
    tenant_id = provider(viewer, Role.owner, write=True)
    values = {
        "name": name,
        "host": host.strip(),
        "port": port.strip(),
        "username": username.strip(),
        "tls": tls,
        "hotspot_server": hotspot_server.strip(),
    }
    errors: dict[str, str] = {}
    number = _whole(values["port"] or "8728")
    if number is None or not 1 <= number <= 65535:
        errors["port"] = "The API port is a number from 1 to 65535: 8728 (api) or 8729 (api-ssl)."
    data = None
    try:
        data = RouterIn(
            name=name,
            host=values["host"],
            port=number if "port" not in errors else 8728,
            username=values["username"],
            password=password,
            tls=tls == "on",
            hotspot_server=values["hotspot_server"] or "hotspot1",
        )
    except ValidationError as exc:
        for e in exc.errors():
            field = str(e["loc"][0]) if e["loc"] else "name"
            msg = str(e["msg"]).removeprefix("Value error, ")
            if field == "password" and not password:
                msg = "Type the RouterOS API user's password."
            elif field == "name" and not name.strip():
                msg = "Give the router a name, like 'Stall 42'."
            errors.setdefault(field, msg)
    if errors or data is None:
        return await _routers_page(request, viewer, tenant_id, values=values, errors=errors, status=422)
    try:
        async with unit_of_work() as session:
            # The service encrypts the password and audits the addition (router.added).
            await routers.add(
                session, tenant_id=tenant_id, data=data, box=runtime().secrets, by=viewer.user_id
            )
    except Conflict as exc:
        return await _routers_page(
            request, viewer, tenant_id, values=values, errors={"name": exc.message}, status=422
        )
    return RedirectResponse("/app/wifi/routers?done=router_added", status_code=303)


@router.post("/app/wifi/routers/{router_id}/test")
async def router_test(router_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    """Log in to the router now and record what it says (POST /api/routers/{id}/test, `router test`)."""
    tenant_id = provider(viewer, write=True)
    async with unit_of_work(readonly=True) as session:
        await routers.get(session, tenant_id=tenant_id, router_id=router_id)  # 404 for another tenant's
    info, error = await check_router(router_id)
    async with unit_of_work() as session:
        await audit(
            session,
            viewer,
            tenant_id,
            "router.tested",
            str(router_id),
            answered=info is not None,
            error=(error or "")[:200] or None,
        )
    return RedirectResponse(f"/app/wifi/routers?tested={router_id}", status_code=303)


@router.get("/app/wifi/routers/{router_id}/setup.rsc", response_class=PlainTextResponse)
async def router_script(router_id: uuid.UUID, viewer: CurrentViewer) -> PlainTextResponse:
    """The RouterOS setup script, as GET /api/routers/{id}/config makes it."""
    tenant_id = provider(viewer)
    async with unit_of_work(readonly=True) as session:
        r = await routers.get(session, tenant_id=tenant_id, router_id=router_id)
        tenant = await tenants.get(session, tenant_id)
        sold = await plans.list(session, tenant_id=tenant_id, router_id=r.id, active_only=True)
        script = setup_script(
            router=r, plans=sold, base_url=runtime().settings.base_url, provider_slug=tenant.slug
        )
    return PlainTextResponse(
        script,
        headers={"Content-Disposition": 'attachment; filename="lipapush.rsc"', "Cache-Control": "no-store"},
    )


# -- sales ------------------------------------------------------------------------------------------
def _day(raw: str, field: str, errors: dict[str, str]) -> date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[field] = "Use a date like 2025-03-31."
        return None


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
    today = today_eat()
    last = _day(form["to"], "to", errors) or today
    first = _day(form["from"], "from", errors) or last - timedelta(days=29)
    if not errors:
        if first > last:
            errors["to"] = "The end date is before the start date."
        elif (last - first).days >= MAX_PERIOD_DAYS:
            errors["from"] = f"Choose at most {MAX_PERIOD_DAYS} days."
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
