"""Settings → Plan (/app/settings/plan): the business's API plan. Owner and manager see the plan that
applies now (the default one while a chosen plan's fee is unpaid), this Nairobi month's live payment
requests against its quota and the plans on offer; the owner chooses one and pays it from the wallet or
by M-Pesa. core.plans.use_cases decides who may and what it costs; this page parses and renders."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.access.permissions import Permission
from core.errors import Conflict, InvalidInput, LipapushError, NotFound, PermissionDenied
from core.payments.models import PaymentSource
from core.payments.schemas import PaymentOut
from core.payments.use_cases import get_payment
from core.phones import normalize_msisdn
from core.plans import use_cases
from core.plans.schemas import PlanStatusOut
from web.panel.app_settings import settings_page
from web.panel.forms import parse_uuid
from web.panel.security import CurrentViewer, Viewer
from web.panel.templating import EAT

router = APIRouter(include_in_schema=False)

PAGE = "/app/settings/plan"
DONE = {
    "chosen": "Plan changed: its limits apply from the next payment request.",
    "chosen_unpaid": "Plan chosen. It has a monthly fee: pay it below. Until it is paid, the default plan "
    "applies.",
    "paid": "Plan paid from the wallet: its limits apply from now on.",
}


def payment_link(payment_id: uuid.UUID) -> str:
    """Where paying by M-Pesa leads: the page, saying how that prompt went (and a link to reload it)."""
    return f"{PAGE}?payment={payment_id}#pay"


def month_label(month: str) -> str:
    """ "2026-12" as people read it: "December 2026"."""
    return datetime.strptime(month, "%Y-%m").strftime("%B %Y")


def _covers(status: PlanStatusOut) -> str:
    """What the next payment buys, in words: the rest of this month while unpaid, else the month the
    paid period runs into (core.plans.billing.due)."""
    if status.unpaid or status.paid_until is None:
        return f"the rest of {month_label(status.month)}"
    return f"{status.paid_until.astimezone(EAT):%B %Y}"


async def _prompt(viewer: Viewer, raw: str) -> PaymentOut | None:
    """The plan's M-Pesa prompt named by the link the pay button leads to, to say how it went. A link
    naming anything else (another business's payment, a sale) shows nothing."""
    payment_id = parse_uuid(raw, "payment", {}, "")
    if payment_id is None or not viewer.actor.can(Permission.payments_read):
        return None
    try:
        payment = await get_payment(viewer.actor, payment_id)
    except NotFound:
        return None
    return payment if payment.source is PaymentSource.topup else None


async def _page(
    request: Request,
    viewer: Viewer,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    actor = viewer.actor
    plan = await use_cases.plan_status(actor)
    offer = await use_cases.plans_on_offer(actor)
    due = plan.next_payment_cents
    ctx: dict[str, Any] = {
        "status": plan,
        "offer": offer,
        "default_name": next((p.name for p in offer if p.is_default), "default"),
        "month": month_label(plan.month),
        # What paying now costs: to the cent from the wallet, in whole shillings (rounded up, as core
        # asks for them) by M-Pesa.
        "due_cents": due,
        "due_shillings": plan.next_mpesa_amount,
        "covers": _covers(plan),
        "prompt": await _prompt(viewer, request.query_params.get("payment", "")),
        "payment_link": payment_link,
        "errors": errors or {},
        "values": values or {"phone": ""},
        "is_owner": actor.shows(Permission.plan_manage),
        "done": DONE.get(request.query_params.get("done", "")),
    }
    return settings_page(request, viewer, "app/settings_plan.html", ctx, status=status)


@router.get(PAGE, response_class=HTMLResponse)
async def plan_page(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _page(request, viewer)


@router.post(f"{PAGE}/choose", response_model=None)
async def choose(
    request: Request, viewer: CurrentViewer, code: Annotated[str, Form(max_length=40)] = ""
) -> Response:
    """A plan from the table. One with a fee applies once paid: the page then says so and offers to pay."""
    try:
        chosen = await use_cases.choose_plan(viewer.actor, code=code)
    except (NotFound, Conflict, InvalidInput) as exc:  # a plan withdrawn since the page was shown
        return await _page(request, viewer, errors={"choose": exc.message}, status=exc.status)
    return RedirectResponse(f"{PAGE}?done={'chosen_unpaid' if chosen.unpaid else 'chosen'}", status_code=303)


@router.post(f"{PAGE}/pay", response_model=None)
async def pay_from_wallet(request: Request, viewer: CurrentViewer) -> Response:
    """Too little in the wallet, a free plan or a month paid ahead: core's reason above the form."""
    try:
        await use_cases.pay_plan(viewer.actor)
    except PermissionDenied:
        raise  # the error page, as for every other form
    except LipapushError as exc:
        return await _page(request, viewer, errors={"pay": exc.message}, status=exc.status)
    return RedirectResponse(f"{PAGE}?done=paid", status_code=303)


@router.post(f"{PAGE}/pay-mpesa", response_model=None)
async def pay_by_mpesa(
    request: Request, viewer: CurrentViewer, phone: Annotated[str, Form(max_length=40)] = ""
) -> Response:
    """An STK push of what the plan costs now to `phone` (empty: the business phone); the plan is paid
    when its money reaches the wallet. The page it leads to says to approve the prompt."""
    viewer.actor.require(Permission.plan_manage)  # before the form's own errors
    values = {"phone": phone}
    try:
        msisdn = normalize_msisdn(phone.strip()) if phone.strip() else None
    except InvalidInput as exc:
        return await _page(request, viewer, errors={"phone": exc.message}, values=values, status=422)
    try:
        payment = await use_cases.pay_plan_by_mpesa(viewer.actor, phone=msisdn)
    except PermissionDenied:
        raise
    except LipapushError as exc:  # a free plan, a month paid ahead, M-Pesa refused or unreachable
        return await _page(request, viewer, errors={"pay": exc.message}, values=values, status=exc.status)
    return RedirectResponse(payment_link(payment.id), status_code=303)
