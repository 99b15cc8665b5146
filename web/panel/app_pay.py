"""Request a payment from the business view: the dashboard's form (/app), its recent-customer picks,
and a status line that follows the payment until M-Pesa answers (GET /app/pay/{id}/status, polled by
panel.js like the wallet's top-up status).

The push is core.payments.use_cases.request_payment, the use case behind POST /api/stk-push. The form
only turns what was typed into the API's own StkPushIn; who may push, the limits, the wallet and every
other refusal are core's, and its message is shown as it is. Owner, manager and cashier may all
request payments; reading a payment back goes through get_payment, so a cashier follows only their own.

Payments are recorded with source `api` (core's SOURCE_BY_VIA for the panel): PaymentSource has no web
value, and adding one means migrating the column's CHECK constraint."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from core.errors import InvalidInput, NotFound
from core.notify.texts import local_phone
from core.payments import use_cases
from core.payments.models import CUSTOMER_SOURCES, PaymentStatus
from core.payments.schemas import PaymentOut, StkPushIn
from web.panel.security import CurrentViewer, Viewer
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

PICKS = 5
FIELDS = ("phone", "amount", "name", "reference")
MISSING = {
    "phone": "Type the customer's M-Pesa phone number, like 0722 000 111.",
    "amount": "Type the amount in whole shillings, like 150.",
}
# The bot's words for each outcome (core.notify.texts.payment_status), so both read the same.
LABELS = {
    PaymentStatus.pending: "Waiting for the customer",
    PaymentStatus.success: "Paid",
    PaymentStatus.cancelled: "Cancelled",
    PaymentStatus.timeout: "No response",
    PaymentStatus.expired: "Expired",
    PaymentStatus.failed: "Not paid",
}
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_key() -> str:
    return secrets.token_urlsafe(18)


@dataclass
class PayForm:
    """What was typed, the complaints about it, and the form's one-use key.

    The key goes to core as the Idempotency-Key: a double click or a resent form gets the first
    payment back instead of a second prompt on the customer's phone."""

    phone: str = ""
    amount: str = ""
    name: str = ""
    reference: str = ""
    key: str = field(default_factory=new_key)
    errors: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # core's refusal, shown above the form

    @classmethod
    def typed(cls, values: dict[str, str], key: str = "") -> PayForm:
        typed = {name: values.get(name, "")[:200] for name in FIELDS}
        return cls(
            phone=typed["phone"],
            amount=typed["amount"],
            name=typed["name"],
            reference=typed["reference"],
            key=key if _KEY.match(key) else new_key(),
        )


def field_errors(exc: ValidationError) -> dict[str, str]:
    """StkPushIn's complaints by field: the phone and amount rules raise InvalidInput with the
    message the API gives; the name and reference rules raise ValueError."""
    errors: dict[str, str] = {}
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "phone"
        cause = (err.get("ctx") or {}).get("error")
        message = cause.message if isinstance(cause, InvalidInput) else str(err["msg"])
        errors.setdefault(name, message.removeprefix("Value error, "))
    return errors


def parse(form: PayForm) -> StkPushIn | None:
    """The form as the API's request body, or None with form.errors filled in."""
    form.errors = {name: message for name, message in MISSING.items() if not getattr(form, name).strip()}
    if form.errors:
        return None
    try:
        return StkPushIn(
            phone=form.phone.strip(),
            # "1,000" is how people write amounts; the API's rule decides the rest (1.5 and 0 refused).
            amount=form.amount.replace(",", "").strip(),
            name=form.name or None,
            reference=form.reference or None,
        )
    except ValidationError as exc:
        form.errors = field_errors(exc)
        return None


async def submit(viewer: Viewer, body: StkPushIn, key: str) -> PaymentOut:
    """Send the push; raises core's LipapushError when it cannot."""
    return await use_cases.request_payment(
        viewer.actor,
        phone=body.phone,
        amount=body.amount,
        name=body.name,
        reference=body.reference,
        description=body.description,
        # Scoped to the user: nobody can post another user's key to be handed their payment.
        idempotency_key=f"panel:{viewer.user_id.hex}:{key}",
    )


def prefill_url(**values: str) -> str:
    query = urlencode({k: v for k, v in values.items() if v})
    return "/app" + (f"?{query}" if query else "") + "#request-payment"


async def picks(viewer: Viewer) -> list[dict[str, str]]:
    """Recent customers to tap: the customer book's for those who may read it (the bot's list); a
    cashier, who never sees the book on the panel, gets the people from their own recent requests."""
    people = [(p.phone, p.name or "") for p in await use_cases.payee_suggestions(viewer.actor, limit=PICKS)]
    return [
        {
            "msisdn": phone,
            "phone": local_phone(phone),
            "name": name,
            "href": prefill_url(phone=local_phone(phone), name=name),
        }
        for phone, name in people
    ]


def status_view(p: PaymentOut) -> dict[str, Any]:
    """What the status line needs: the payment, the bot's word for its state, and for an unpaid one a
    link that fills the form again ("Send again" in the bot)."""
    final_unpaid = p.status.is_final and p.status is not PaymentStatus.success
    return {
        "p": p,
        "label": LABELS.get(p.status, p.status.value),
        "again": prefill_url(phone=local_phone(p.phone), amount=str(p.amount), name=p.customer_name or "")
        if final_unpaid
        else None,
    }


async def find(viewer: Viewer, payment_id: uuid.UUID) -> PaymentOut:
    """A customer payment this viewer may read; anything else (another business's, another cashier's,
    a top-up) is 404."""
    p = await use_cases.get_payment(viewer.actor, payment_id)
    if p.source not in CUSTOMER_SOURCES:
        raise NotFound("No such transaction.")
    return p


async def section(viewer: Viewer, *, form: PayForm, payment_id: uuid.UUID | None = None) -> dict[str, Any]:
    """The dashboard's "Request a payment" context: the form, the picks and the followed payment."""
    current = None
    if payment_id is not None:
        try:
            current = status_view(await find(viewer, payment_id))
        except NotFound:
            current = None  # a stale or foreign link: the form is still useful
    return {"pay": form, "picks": await picks(viewer), "pay_status": current}


@router.get("/app/pay/{payment_id}/status", response_class=HTMLResponse)
async def pay_status(request: Request, payment_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    """The fragment data-poll swaps in: it keeps polling while the payment is pending."""
    view = status_view(await find(viewer, payment_id))
    return render(request, "app/pay_status.html", {"pay_status": view}, viewer=viewer)
