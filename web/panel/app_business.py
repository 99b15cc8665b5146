"""The business dashboard (/app): the same figures as GET /api/dashboard and the bot's 🏠 Home, a
30-day chart drawn as server-side SVG, a notice when the business cannot collect normally, and the
"Request a payment" form (its parsing, picks and status line are in app_pay).

A cashier sees only their own activity: the pushes they started, never the wallet or customer book.
A business with more than one channel may show one channel's figures (web/panel/channel_filter.py);
the wallet and commission stay the business's.
Transactions, wallet and invoices are in app_money; the customer book in app_customers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.access.permissions import Permission
from core.errors import IdempotencyKeyReused, LipapushError
from core.payments.reports import DayTotal
from core.payments.use_cases import home_view
from core.tenants.models import Tenant, TenantStatus
from web.panel import app_balance, app_pay
from web.panel.app_pay import PayForm
from web.panel.channel_filter import channel_options, parse_channel
from web.panel.security import CurrentViewer, Viewer, business
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

CHART_DAYS = 30
CHART_HEIGHT = 100  # SVG units for the tallest bar
BAR = 8
GAP = 2


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    height: int
    day: DayTotal


def chart_bars(days: list[DayTotal]) -> list[Bar]:
    """Bar geometry for the inline SVG (attributes only: the CSP allows no inline styles)."""
    top = max((d.paid_kes for d in days), default=0)
    bars = []
    for i, d in enumerate(days):
        h = round(CHART_HEIGHT * d.paid_kes / top) if top else 0
        if d.paid_kes and h < 1:
            h = 1
        bars.append(Bar(x=i * (BAR + GAP), y=CHART_HEIGHT - h, height=h, day=d))
    return bars


def notices(tenant: Tenant, *, can_manage: bool) -> list[dict[str, str]]:
    """Why this business cannot collect normally, and what to do about it."""
    found = []
    if tenant.status is TenantStatus.suspended:
        reason = f": {tenant.status_reason}" if tenant.status_reason else "."
        found.append(
            {
                "title": "This business is suspended",
                "text": f"Payments cannot be requested from any channel{reason} "
                "Contact lipapush support to have it reactivated.",
            }
        )
    elif tenant.status is TenantStatus.onboarding:
        found.append(
            {
                "title": "Setup is not finished",
                "text": "Your M-Pesa Till or Paybill is not verified yet, so customers cannot be asked to "
                "pay. Open Settings to add it and approve the KES 1 test payment sent to the owner's phone.",
                "href": "/app/settings",
                "link": "Open Settings",
            }
        )
    if tenant.billing_hold:
        notice = {
            "title": "Billing hold",
            "text": f"{tenant.billing_hold} Top up the wallet or pay the open invoice to lift it.",
        }
        if can_manage:
            notice.update(href="/app/wallet", link="Open the wallet")
        found.append(notice)
    return found


async def dashboard_page(
    request: Request,
    viewer: Viewer,
    *,
    form: PayForm,
    payment_id: uuid.UUID | None = None,
    status: int = 200,
    channel: str = "",
) -> HTMLResponse:
    """`channel`: the channel filter as typed in the URL (empty: every channel); a malformed one is
    said by the select, over the business's whole figures."""
    business(viewer)
    errors: dict[str, str] = {}
    channel_id = parse_channel(channel, errors)
    home = await home_view(viewer.actor, chart_days=CHART_DAYS, channel_id=channel_id)
    manages = home.wallet is not None
    ctx: dict[str, object] = {"manages": manages, "status": home.tenant.status, "summary": home.summary}
    ctx["channels"] = await channel_options(viewer, book_only=True)
    ctx["form"] = {"channel": str(channel_id) if channel_id else channel}
    ctx["errors"] = errors
    if errors:
        status = 422
    if manages:
        ctx["commission"], ctx["wallet"] = home.commission, home.wallet
        ctx["recent_customers"] = home.recent_customers
    else:
        ctx["recent_payments"] = home.recent_payments
    days = home.days
    ctx["notices"] = notices(home.tenant, can_manage=manages)
    ctx.update(await app_pay.section(viewer, form=form, payment_id=payment_id))
    ctx.update(await app_balance.dashboard_section(viewer))
    ctx["days"] = days
    ctx["bars"] = chart_bars(days)
    ctx["chart_width"] = CHART_DAYS * (BAR + GAP) - GAP
    ctx["chart_height"] = CHART_HEIGHT
    ctx["bar_width"] = BAR
    ctx["chart_total"] = sum(d.paid_kes for d in days)
    return render(request, "app/home.html", ctx, viewer=viewer, status=status)


@router.get("/app", response_class=HTMLResponse)
async def app_home(request: Request, viewer: CurrentViewer, payment: str = "") -> HTMLResponse:
    """`payment` is the request just sent (its status line follows it); phone, amount, name and
    reference fill the form (a recent customer's link, "Send again")."""
    try:
        followed = uuid.UUID(payment) if payment else None
    except ValueError:
        followed = None
    form = PayForm.typed(dict(request.query_params))
    channel = request.query_params.get("channel", "")
    return await dashboard_page(request, viewer, form=form, payment_id=followed, channel=channel)


@router.post("/app/pay", response_model=None)
async def request_payment(
    request: Request,
    viewer: CurrentViewer,
    phone: Annotated[str, Form(max_length=100)] = "",
    amount: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    reference: Annotated[str, Form(max_length=100)] = "",
    key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    # Asked before the form is read: a read-only admin hears why, not what was mistyped.
    viewer.actor.require(Permission.payments_request)
    form = PayForm.typed({"phone": phone, "amount": amount, "name": name, "reference": reference}, key)
    body = app_pay.parse(form)
    if body is None:
        return await dashboard_page(request, viewer, form=form, status=422)
    try:
        sent = await app_pay.submit(viewer, body, form.key)
    except LipapushError as exc:
        # Core may have recorded the payment (M-Pesa refused it, or did not answer): a fresh key, so
        # sending again is a new request, and the recorded one is followed below the message.
        form.key = app_pay.new_key()
        form.error = exc.message
        if isinstance(exc, IdempotencyKeyReused):
            form.error = (
                "This form was already used for another payment, so nothing was sent. "
                "Check the details and send again."
            )
        recorded = exc.fields.get("payment_id")
        return await dashboard_page(
            request,
            viewer,
            form=form,
            payment_id=uuid.UUID(str(recorded)) if recorded else None,
            status=exc.status,
        )
    return RedirectResponse(f"/app?payment={sent.id}#request-payment", status_code=303)
