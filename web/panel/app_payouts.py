"""Payouts in the business view (/app/payouts): the list (status, channel and phone filters, keyset
pages), each payout's page following it to M-Pesa's answer, and "New payout": the form, then a
confirmation page that says exactly what will be sent ("Send KES 1,500 to 0712 345 678 (Wanjiru)
through “Payouts”? It cannot be undone."), and only its Confirm calls core.

Who may pay out, the channel, the limits and the initiator's proof are core's
(core.payouts.use_cases.request_payout); the form only turns what was typed into the API's own
PayoutIn and shows core's refusal beside the field it is about. The owner and managers read payouts; a
cashier the owner allowed to pay out sees the payout they just sent, but not the list (payouts:read is
not a cashier's)."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from core.access.permissions import Permission
from core.errors import IdempotencyKeyReused, InvalidInput, LipapushError, NotFound, PermissionDenied
from core.payouts.errors import DailyPayoutLimitReached, PayoutOverLimit
from core.payouts.models import PayoutStatus
from core.payouts.schemas import PayoutFilter, PayoutIn, PayoutOut
from core.payouts.use_cases import get_payout, list_payouts, request_payout
from core.tenants.initiator_schemas import PayoutChannelOut
from web.panel.app_pay import field_errors
from web.panel.forms import choice, page_url, parse_uuid
from web.panel.money_out import (
    BAD_CHANNEL,
    COMMAND_FIELD,
    COMMAND_LABELS,
    COMMANDS,
    STATUS_LABELS,
    channel_label,
    channel_names,
    may_pay_out,
    payout_channels,
    require_paying,
)
from web.panel.security import CurrentViewer, Viewer, business
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

PAGE = 25
FIELDS = ("phone", "amount", "name", "reference", "command", "channel")
MISSING = {
    "phone": "Type the recipient's M-Pesa phone number, like 0722 000 111.",
    "amount": "Type the amount in whole shillings, like 1500.",
}
# core's field names as the form calls them
FORM_FIELD = {"channel_id": "channel", "phone": "phone", "amount": "amount", "name": "name"}
NAME_TOO_LONG = "The name can be at most 100 characters."
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
DONE = {
    "sent": "Sent to M-Pesa. This page follows it until M-Pesa answers, usually within seconds.",
}


def new_key() -> str:
    return secrets.token_urlsafe(18)


@dataclass
class PayoutForm:
    """What was typed, the complaints about it, and the form's one-use key.

    The key goes to core as the Idempotency-Key: a double click on Confirm, or the confirmation sent
    again, gets the first payout back instead of paying twice."""

    phone: str = ""
    amount: str = ""
    name: str = ""
    reference: str = ""
    command: str = "business"
    channel: str = ""
    key: str = field(default_factory=new_key)
    errors: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # core's refusal that belongs to no one field, shown above the form

    @classmethod
    def typed(cls, values: dict[str, str], key: str = "") -> PayoutForm:
        typed = {name: values.get(name, "")[:200] for name in FIELDS}
        return cls(
            phone=typed["phone"],
            amount=typed["amount"],
            name=typed["name"],
            reference=typed["reference"],
            command=typed["command"] or "business",
            channel=typed["channel"],
            key=key if _KEY.match(key) else new_key(),
        )


def parse(form: PayoutForm, channels: list[PayoutChannelOut]) -> PayoutIn | None:
    """The form as the API's request body, or None with form.errors filled in. With several payout
    channels one must be chosen; with one, it is named so the confirmation can say which."""
    errors = {name: message for name, message in MISSING.items() if not getattr(form, name).strip()}
    channel_id = parse_uuid(form.channel, "channel", errors, BAD_CHANNEL)
    if channel_id is None and len(channels) == 1:
        channel_id = channels[0].id
    elif channels and channel_id not in {c.id for c in channels}:
        errors.setdefault("channel", BAD_CHANNEL)
    if form.command not in {value for value, _, _ in COMMANDS}:
        errors["command"] = "Choose what kind of payment this is."
    body: PayoutIn | None = None
    try:
        body = PayoutIn.model_validate(
            {
                "phone": form.phone.strip(),
                # "1,500" is how people write amounts; the API's rule decides the rest (1.5 refused).
                "amount": form.amount.replace(",", "").strip(),
                "name": form.name or None,
                "reference": form.reference or None,
                "command": form.command if "command" not in errors else "business",
                "channel_id": channel_id,
            }
        )
    except ValidationError as exc:
        for name, message in field_errors(exc).items():  # every complaint at once, the form's own first
            errors.setdefault(name, NAME_TOO_LONG if name == "name" else message)
    form.errors = errors
    return None if errors else body


def _form_ctx(form: PayoutForm, channels: list[PayoutChannelOut]) -> dict[str, Any]:
    return {
        "f": form,
        "channels": [(str(c.id), channel_label(c)) for c in channels],
        "commands": [(value, label) for value, _, label in COMMANDS],
    }


async def form_page(request: Request, viewer: Viewer, form: PayoutForm, *, status: int = 200) -> HTMLResponse:
    channels = await payout_channels(viewer)
    if len(channels) == 1 and not form.channel:
        form.channel = str(channels[0].id)
    ctx = _form_ctx(form, channels)
    ctx["no_channel"] = not channels and viewer.actor.shows(Permission.payouts_read)
    ctx["owner"] = viewer.actor.shows(Permission.channel_manage)
    return render(request, "app/payout_form.html", ctx, viewer=viewer, status=status)


# -- the list ---------------------------------------------------------------------------------------
def _list_form(request: Request) -> dict[str, str]:
    qp = request.query_params
    return {name: qp.get(name, "")[:100] for name in ("status", "channel", "phone")}


@router.get("/app/payouts", response_class=HTMLResponse)
async def payouts(request: Request, viewer: CurrentViewer, cursor: str = "") -> HTMLResponse:
    business(viewer, Permission.payouts_read)
    form = _list_form(request)
    errors: dict[str, str] = {}
    status = choice(PayoutStatus, form["status"], "status", errors, "Choose a status from the list.")
    channel_id = parse_uuid(form["channel"], "channel", errors, BAD_CHANNEL)
    phone = form["phone"].strip()
    if len(phone) > 20:
        errors["phone"] = "Type at most 20 characters of the phone number."
    channels = await payout_channels(viewer)
    ctx: dict[str, Any] = {
        "form": form,
        "errors": errors,
        "statuses": [(s.value, STATUS_LABELS[s]) for s in PayoutStatus],
        "labels": STATUS_LABELS,
        "channels": channels,
        "channel_names": channel_names(channels),
        "items": [],
        "next_url": None,
        "first_url": None,
        "can_pay": await may_pay_out(viewer),
    }
    if errors:
        return render(request, "app/payouts.html", ctx, viewer=viewer, status=422)
    filters = PayoutFilter(status=status, channel_id=channel_id, phone=phone or None)
    try:
        page = await list_payouts(viewer.actor, filters=filters, cursor=cursor or None, limit=PAGE)
    except InvalidInput as exc:  # a cursor that was tampered with
        ctx["errors"] = {"cursor": exc.message}
        return render(request, "app/payouts.html", ctx, viewer=viewer, status=422)
    ctx["items"] = page.items
    if page.next_cursor:
        ctx["next_url"] = page_url("/app/payouts", form, cursor=page.next_cursor)
    if cursor:
        ctx["first_url"] = page_url("/app/payouts", form)
    return render(request, "app/payouts.html", ctx, viewer=viewer)


# -- a new payout: form, confirmation, send ---------------------------------------------------------
async def offered(viewer: Viewer) -> None:
    """The form is shown to whoever the pages offer it (an admin viewing read-only too: its review is
    refused with the read-only message); anyone else hears core's refusal now."""
    business(viewer)
    if not await may_pay_out(viewer):
        await require_paying(viewer)


@router.get("/app/payouts/new", response_class=HTMLResponse)
async def new_payout(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    await offered(viewer)
    return await form_page(request, viewer, PayoutForm.typed(dict(request.query_params)))


@router.post("/app/payouts/new", response_class=HTMLResponse)
async def edit_payout(
    request: Request,
    viewer: CurrentViewer,
    phone: Annotated[str, Form(max_length=100)] = "",
    amount: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    reference: Annotated[str, Form(max_length=200)] = "",
    command: Annotated[str, Form(max_length=40)] = "",
    channel: Annotated[str, Form(max_length=100)] = "",
    key: Annotated[str, Form(max_length=100)] = "",
) -> HTMLResponse:
    """The confirmation's Back: the form again, as it was typed (the same key: nothing was sent)."""
    await offered(viewer)
    values = {"phone": phone, "amount": amount, "name": name, "reference": reference}
    form = PayoutForm.typed({**values, "command": command, "channel": channel}, key)
    return await form_page(request, viewer, form)


@router.post("/app/payouts/review", response_class=HTMLResponse)
async def review_payout(
    request: Request,
    viewer: CurrentViewer,
    phone: Annotated[str, Form(max_length=100)] = "",
    amount: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    reference: Annotated[str, Form(max_length=200)] = "",
    command: Annotated[str, Form(max_length=40)] = "",
    channel: Annotated[str, Form(max_length=100)] = "",
    key: Annotated[str, Form(max_length=100)] = "",
) -> HTMLResponse:
    """The form checked, then the confirmation page: nothing is sent from here."""
    business(viewer)
    await require_paying(viewer)  # before the form is read: a read-only admin hears why
    values = {"phone": phone, "amount": amount, "name": name, "reference": reference}
    form = PayoutForm.typed({**values, "command": command, "channel": channel}, key)
    channels = await payout_channels(viewer)
    body = parse(form, channels)
    if body is None:
        return await form_page(request, viewer, form, status=422)
    chosen = next((c for c in channels if c.id == body.channel_id), None)
    ctx = {
        "f": form,
        "p": body,
        "command_field": COMMAND_FIELD[body.command],
        "command_label": COMMAND_LABELS[body.command],
        "channel": chosen,
    }
    return render(request, "app/payout_confirm.html", ctx, viewer=viewer)


def _refusal(form: PayoutForm, exc: LipapushError) -> None:
    """Core's refusal beside the field it is about; the rest above the form."""
    if isinstance(exc, IdempotencyKeyReused):
        form.error = (
            "This confirmation was already used for another payout, so nothing was sent. Check the "
            "details and send again."
        )
    elif isinstance(exc, PayoutOverLimit | DailyPayoutLimitReached):
        form.errors["amount"] = exc.message
    elif isinstance(exc, InvalidInput) and exc.field in FORM_FIELD:
        form.errors[FORM_FIELD[exc.field]] = exc.message
    else:
        form.error = exc.message


@router.post("/app/payouts", response_model=None)
async def send_payout(
    request: Request,
    viewer: CurrentViewer,
    phone: Annotated[str, Form(max_length=100)] = "",
    amount: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    reference: Annotated[str, Form(max_length=200)] = "",
    command: Annotated[str, Form(max_length=40)] = "",
    channel: Annotated[str, Form(max_length=100)] = "",
    key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The confirmation's Confirm: the one place the panel pays out."""
    business(viewer)
    await require_paying(viewer)
    values = {"phone": phone, "amount": amount, "name": name, "reference": reference}
    form = PayoutForm.typed({**values, "command": command, "channel": channel}, key)
    body = parse(form, await payout_channels(viewer))
    if body is None:
        return await form_page(request, viewer, form, status=422)
    try:
        sent = await request_payout(
            viewer.actor,
            phone=body.phone,
            amount=body.amount,
            name=body.name,
            reference=body.reference,
            command=body.command,
            channel_id=body.channel_id,
            # Scoped to the person: nobody can post another's key to be handed their payout.
            idempotency_key=f"panel:{viewer.user_id.hex}:{form.key}",
        )
    except (PermissionDenied, NotFound):
        raise  # the error page, as for every other form
    except LipapushError as exc:
        # Nothing was written (core refuses before it records): a fresh key, so the corrected form is
        # a new request rather than "this key was used for another payout".
        form.key = new_key()
        _refusal(form, exc)
        return await form_page(request, viewer, form, status=exc.status)
    if viewer.actor.can(Permission.payouts_read):
        return RedirectResponse(f"/app/payouts/{sent.id}?done=sent", status_code=303)
    # A cashier allowed to pay out cannot read payouts back: what was sent is shown once, here.
    return _payout_page(request, viewer, sent, {}, done=DONE["sent"], follow=False, status=201)


# -- one payout -------------------------------------------------------------------------------------
def _payout_page(
    request: Request,
    viewer: Viewer,
    p: PayoutOut,
    names: dict[uuid.UUID, str],
    *,
    done: str | None,
    follow: bool,
    status: int = 200,
) -> HTMLResponse:
    ctx = {"p": p, "done": done, **_facts_ctx(p, names, follow=follow)}
    return render(request, "app/payout.html", ctx, viewer=viewer, status=status)


def _facts_ctx(p: PayoutOut, names: dict[uuid.UUID, str], *, follow: bool) -> dict[str, Any]:
    return {
        "p": p,
        "label": STATUS_LABELS[p.status],
        "command_label": COMMAND_LABELS[p.command],
        "channel_name": names.get(p.channel_id),
        "follow": follow,
    }


@router.get("/app/payouts/{payout_id:uuid}", response_class=HTMLResponse)
async def payout(request: Request, payout_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    business(viewer, Permission.payouts_read)
    p = await get_payout(viewer.actor, payout_id)
    names = channel_names(await payout_channels(viewer))
    done = DONE.get(request.query_params.get("done", ""))
    return _payout_page(request, viewer, p, names, done=done, follow=True)


@router.get("/app/payouts/{payout_id:uuid}/status", response_class=HTMLResponse)
async def payout_status(request: Request, payout_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    """The fragment data-poll swaps in: it keeps polling until the payout is final."""
    business(viewer, Permission.payouts_read)
    p = await get_payout(viewer.actor, payout_id)
    names = channel_names(await payout_channels(viewer))
    return render(request, "app/payout_facts.html", _facts_ctx(p, names, follow=True), viewer=viewer)
