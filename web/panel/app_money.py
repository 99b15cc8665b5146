"""The business view's money pages: transactions (filters, keyset pages, detail), the wallet with
top-up and low-balance level, and invoices with their Excel download.

Roles as in the API (web/api/wallet.py) and the bot: a cashier sees only the transactions they started;
wallet, top-up and invoices are for the owner and manager; the low-balance level is the owner's.
A business with more than one channel may list one channel's transactions (web/panel/channel_filter.py),
and export them (owner and manager, as GET /api/transactions/export-excel)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError

from core.access.permissions import Permission
from core.billing import use_cases as billing
from core.billing.schemas import WalletSettingsIn
from core.errors import InvalidInput, LipapushError, NotFound
from core.exports.use_cases import export_invoice, export_transactions
from core.money import parse_shillings
from core.payments.models import PaymentSource, PaymentStatus
from core.payments.service import TransactionFilter
from core.payments.use_cases import get_payment, get_payment_detail, list_payments
from core.phones import normalize_msisdn
from core.reversals.use_cases import list_reversals
from web.exports import xlsx_response
from web.panel.channel_filter import channel_options, parse_channel
from web.panel.forms import choice, day_range, page_url, parse_whole
from web.panel.security import CurrentViewer, Viewer, business
from web.panel.templating import EAT, render

router = APIRouter(include_in_schema=False)

PAGE = 25
POSTINGS = 20
POSTING_LABELS = {
    "topup": "Top-up",
    "commission.wallet": "Commission",
    "commission.receivable": "Commission (on invoice)",
    "commission.refund.wallet": "Commission back (reversed payment)",
    "commission.refund.receivable": "Commission back (reversed payment, on invoice)",
    "adjustment.credit": "Adjustment",
    "adjustment.debit": "Adjustment",
    "invoice.payment": "Invoice paid",
}
DONE = {
    "topup": "Top-up requested: approve the M-Pesa prompt on the phone. "
    "The wallet is credited when it is paid.",
    "threshold": "Low-balance alert level saved.",
}


# -- transactions -----------------------------------------------------------------------------------
def _midnight(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=EAT)


def transaction_filter(form: dict[str, str]) -> tuple[TransactionFilter, dict[str, str]]:
    """The filter form's values as a TransactionFilter, or the message for each field that is wrong."""
    errors: dict[str, str] = {}
    status = choice(PaymentStatus, form["status"], "status", errors, "Choose a status from the list.")
    source = choice(PaymentSource, form["source"], "source", errors, "Choose a source from the list.")
    start, end = day_range(form["from"], form["to"], errors)
    phone = form["phone"].strip()
    if len(phone) > 20:
        errors["phone"] = "Type at most 20 characters of the phone number."
    channel_id = parse_channel(form["channel"], errors)
    if channel_id is not None:
        form["channel"] = str(channel_id)  # as the select writes it, so it shows as chosen
    return (
        TransactionFilter(
            status=status,
            source=source,
            phone=phone or None,
            created_from=_midnight(start) if start else None,
            created_to=_midnight(end + timedelta(days=1)) if end else None,
            channel_id=channel_id,
        ),
        errors,
    )


def _transaction_form(request: Request) -> dict[str, str]:
    qp = request.query_params
    return {name: qp.get(name, "") for name in ("status", "source", "phone", "from", "to", "channel")}


async def _transactions_ctx(viewer: Viewer, form: dict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    # With several channels, the list names each payment's (a top-up's is the platform's: "–").
    channels = await channel_options(viewer)
    return {
        "form": form,
        "errors": errors,
        "statuses": [s.value for s in PaymentStatus],
        "sources": [s.value for s in PaymentSource],
        "channels": channels,
        "channel_names": {c.id: c.name for c in channels},
        "items": [],
        "next_url": None,
        "first_url": None,
        "own": viewer.actor.own_payments_only is not None,
        "export_url": page_url("/app/transactions/export.xlsx", form)
        if viewer.actor.shows(Permission.exports)
        else None,
    }


@router.get("/app/transactions", response_class=HTMLResponse)
async def transactions(request: Request, viewer: CurrentViewer, cursor: str = "") -> HTMLResponse:
    business(viewer)
    form = _transaction_form(request)
    filters, errors = transaction_filter(form)
    ctx = await _transactions_ctx(viewer, form, errors)
    if errors:
        return render(request, "app/transactions.html", ctx, viewer=viewer, status=422)
    try:
        page = await list_payments(viewer.actor, filters=filters, cursor=cursor or None, limit=PAGE)
    except InvalidInput as exc:  # a cursor that was tampered with
        ctx["errors"] = {"cursor": exc.message}
        return render(request, "app/transactions.html", ctx, viewer=viewer, status=422)
    ctx["items"] = page.items
    if page.next_cursor:
        ctx["next_url"] = page_url("/app/transactions", form, cursor=page.next_cursor)
    if cursor:
        ctx["first_url"] = page_url("/app/transactions", form)
    return render(request, "app/transactions.html", ctx, viewer=viewer)


@router.get("/app/transactions/export.xlsx", response_class=StreamingResponse, response_model=None)
async def transactions_export(request: Request, viewer: CurrentViewer) -> StreamingResponse | HTMLResponse:
    """The list's transactions as .xlsx with the page's filters (all pages): the same file and audit
    row (export.transactions) as GET /api/transactions/export-excel."""
    business(viewer, Permission.exports)
    form = _transaction_form(request)
    filters, errors = transaction_filter(form)
    if errors:
        ctx = await _transactions_ctx(viewer, form, errors)
        return render(request, "app/transactions.html", ctx, viewer=viewer, status=422)
    return xlsx_response(await export_transactions(viewer.actor, filters=filters))


@router.get("/app/transactions/{payment_id}", response_class=HTMLResponse)
async def transaction(request: Request, payment_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    return await transaction_page(request, viewer, payment_id)


async def transaction_page(
    request: Request,
    viewer: Viewer,
    payment_id: uuid.UUID,
    *,
    reverse_error: str | None = None,
    reason: str = "",
    status: int = 200,
) -> HTMLResponse:
    """A payment's page; for the owner, its reversals and (while it can be) the form to reverse it."""
    business(viewer)
    actor = viewer.actor
    d = await get_payment_detail(actor, payment_id)
    can_reverse = actor.shows(Permission.reversals_request)
    shown = can_reverse or actor.shows(Permission.payouts_read)
    return render(
        request,
        "app/transaction.html",
        {
            "p": d.payment,
            "commission_cents": d.commission_cents,
            "commission_bps": d.commission_bps,
            "reversals": await list_reversals(actor, payment_id=payment_id) if shown else [],
            "can_reverse": can_reverse,
            "reverse_error": reverse_error,
            "reason": reason,
        },
        viewer=viewer,
        status=status,
    )


# -- wallet -----------------------------------------------------------------------------------------
async def _wallet_page(
    request: Request,
    viewer: Viewer,
    tenant_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    actor = viewer.actor
    w = await billing.view_wallet(actor)
    postings = await billing.wallet_postings(actor, cursor=None, limit=POSTINGS)
    last = await list_payments(actor, filters=TransactionFilter(source=PaymentSource.topup), limit=1)
    business_phone = w.business_phone
    values = values or {}
    return render(
        request,
        "app/wallet.html",
        {
            "w": w,
            "low": w.balance_cents < w.low_balance_threshold_cents,  # the alert's own rule
            "postings": postings.items,
            "labels": POSTING_LABELS,
            "last_topup": last.items[0] if last.items else None,
            "errors": errors or {},
            "amount": values.get("amount", ""),
            "phone": values.get("phone", "0" + business_phone[3:] if len(business_phone) == 12 else ""),
            "threshold": values.get("threshold", str(w.low_balance_threshold_cents // 100)),
            "is_owner": actor.shows(Permission.wallet_settings),
            "done": DONE.get(request.query_params.get("done", "")),
        },
        viewer=viewer,
        status=status,
    )


@router.get("/app/wallet", response_class=HTMLResponse)
async def wallet(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = business(viewer, Permission.wallet_read)
    return await _wallet_page(request, viewer, tenant_id)


@router.post("/app/wallet/topup", response_model=None)
async def topup(
    request: Request,
    viewer: CurrentViewer,
    amount: Annotated[str, Form(max_length=40)] = "",
    phone: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    # The API's rule (web/api/wallet.py): owner or manager.
    tenant_id = business(viewer, Permission.wallet_topup)
    errors: dict[str, str] = {}
    try:
        shillings = parse_shillings(amount.replace(",", "").strip() or "")
    except InvalidInput as exc:
        errors["amount"] = exc.message
    try:
        msisdn = normalize_msisdn(phone.strip()) if phone.strip() else None
    except InvalidInput as exc:
        errors["phone"] = exc.message
    values = {"amount": amount, "phone": phone}
    if errors:
        return await _wallet_page(request, viewer, tenant_id, errors=errors, values=values, status=422)
    try:
        await billing.request_topup(viewer.actor, amount=shillings, phone=msisdn)
    except LipapushError as exc:  # suspended, M-Pesa refused or unreachable: said above the form
        return await _wallet_page(
            request, viewer, tenant_id, errors={"topup": exc.message}, values=values, status=exc.status
        )
    return RedirectResponse("/app/wallet?done=topup", status_code=303)


@router.get("/app/wallet/topups/{payment_id}/status", response_class=HTMLResponse)
async def topup_status(request: Request, payment_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    """The fragment data-poll swaps in: it keeps polling while the top-up is pending."""
    business(viewer, Permission.wallet_read)
    out = await get_payment(viewer.actor, payment_id)
    if out.source is not PaymentSource.topup:
        raise NotFound("No such top-up.")
    return render(request, "app/topup_status.html", {"t": out}, viewer=viewer)


def _threshold(raw: str) -> WalletSettingsIn:
    shillings = parse_whole(raw, max_digits=None)
    if shillings is None:
        raise InvalidInput("threshold", "Type the level in whole shillings, like 500 (0 turns alerts off).")
    try:
        return WalletSettingsIn(low_balance_threshold=shillings)
    except ValidationError:
        raise InvalidInput("threshold", "The level can be at most KES 10,000,000.") from None


@router.post("/app/wallet/threshold", response_model=None)
async def threshold(
    request: Request, viewer: CurrentViewer, threshold: Annotated[str, Form(max_length=40)] = ""
) -> Response:
    # The API's rule (POST /api/wallet/settings) and the bot's: the owner sets the alert level.
    tenant_id = business(viewer, Permission.wallet_settings)
    try:
        data = _threshold(threshold)
    except InvalidInput as exc:
        return await _wallet_page(
            request,
            viewer,
            tenant_id,
            errors={"threshold": exc.message},
            values={"threshold": threshold},
            status=422,
        )
    await billing.change_wallet_settings(viewer.actor, data)
    return RedirectResponse("/app/wallet?done=threshold", status_code=303)


# -- invoices ---------------------------------------------------------------------------------------
@router.get("/app/invoices", response_class=HTMLResponse)
async def invoice_list(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    business(viewer, Permission.invoices_read)
    rows = [
        {"invoice": i, "last_day": i.period_end - timedelta(seconds=1)}
        for i in await billing.list_invoices(viewer.actor)
    ]
    period = (await billing.view_wallet(viewer.actor)).invoice_period.value
    return render(request, "app/invoices.html", {"rows": rows, "period": period}, viewer=viewer)


@router.get("/app/invoices/{invoice_id}", response_class=HTMLResponse)
async def invoice_detail(request: Request, invoice_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    business(viewer, Permission.invoices_read)
    invoice = await billing.invoice_detail(viewer.actor, invoice_id)
    return render(
        request,
        "app/invoice.html",
        {"i": invoice, "lines": invoice.lines, "last_day": invoice.period_end - timedelta(seconds=1)},
        viewer=viewer,
    )


@router.get("/app/invoices/{invoice_id}/export.xlsx", response_class=StreamingResponse)
async def invoice_xlsx(invoice_id: uuid.UUID, viewer: CurrentViewer) -> StreamingResponse:
    """The same file as GET /api/invoices/{id}/export-excel, from the same use case."""
    return xlsx_response(await export_invoice(viewer.actor, invoice_id))
