"""The business view's money pages: transactions (filters, keyset pages, detail), the wallet with
top-up and low-balance level, and invoices with their Excel download.

Roles as in the API (web/api/wallet.py) and the bot: a cashier sees only the transactions they started;
wallet, top-up and invoices are for the owner and manager; the low-balance level is the owner's."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError

from core.auth.models import Role
from core.billing import use_cases as billing
from core.billing.invoices import invoices
from core.billing.schemas import WalletSettingsIn
from core.billing.wallet import wallets
from core.errors import InvalidInput, LipapushError, NotFound
from core.exports.use_cases import export_invoice
from core.money import parse_shillings
from core.payments.models import PaymentSource, PaymentStatus
from core.payments.schemas import PaymentOut
from core.payments.service import TransactionFilter, payments
from core.phones import normalize_msisdn
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants
from web.exports import xlsx_response
from web.panel.forms import choice, day_range, page_url, parse_whole
from web.panel.security import CurrentViewer, Viewer, business
from web.panel.templating import EAT, render

router = APIRouter(include_in_schema=False)

PAGE = 25
POSTINGS = 20
MANAGERS = (Role.owner, Role.manager)
POSTING_LABELS = {
    "topup": "Top-up",
    "commission.wallet": "Commission",
    "commission.receivable": "Commission (on invoice)",
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
def _own(viewer: Viewer) -> uuid.UUID | None:
    """A cashier sees only the payments they started."""
    return viewer.user_id if viewer.business_role is Role.cashier else None


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=EAT)


def transaction_filter(
    form: dict[str, str], own: uuid.UUID | None
) -> tuple[TransactionFilter, dict[str, str]]:
    """The filter form's values as a TransactionFilter, or the message for each field that is wrong."""
    errors: dict[str, str] = {}
    status = choice(PaymentStatus, form["status"], "status", errors, "Choose a status from the list.")
    source = choice(PaymentSource, form["source"], "source", errors, "Choose a source from the list.")
    start, end = day_range(form["from"], form["to"], errors)
    phone = form["phone"].strip()
    if len(phone) > 20:
        errors["phone"] = "Type at most 20 characters of the phone number."
    return (
        TransactionFilter(
            status=status,
            source=source,
            phone=phone or None,
            created_from=_midnight(start) if start else None,
            created_to=_midnight(end + timedelta(days=1)) if end else None,
            initiated_by=own,
        ),
        errors,
    )


@router.get("/app/transactions", response_class=HTMLResponse)
async def transactions(
    request: Request,
    viewer: CurrentViewer,
    status: str = "",
    source: str = "",
    phone: str = "",
    cursor: str = "",
    to: str = "",
) -> HTMLResponse:
    tenant_id = business(viewer)
    form = {
        "status": status,
        "source": source,
        "phone": phone,
        "from": request.query_params.get("from", ""),
        "to": to,
    }
    filters, errors = transaction_filter(form, _own(viewer))
    ctx: dict[str, Any] = {
        "form": form,
        "errors": errors,
        "statuses": [s.value for s in PaymentStatus],
        "sources": [s.value for s in PaymentSource],
        "items": [],
        "next_url": None,
        "first_url": None,
        "own": _own(viewer) is not None,
    }
    if errors:
        return render(request, "app/transactions.html", ctx, viewer=viewer, status=422)
    try:
        async with unit_of_work(readonly=True) as session:
            page = await payments.list_page(
                session, tenant_id=tenant_id, filters=filters, cursor=cursor or None, limit=PAGE
            )
    except InvalidInput as exc:  # a cursor that was tampered with
        ctx["errors"] = {"cursor": exc.message}
        return render(request, "app/transactions.html", ctx, viewer=viewer, status=422)
    ctx["items"] = page.items
    if page.next_cursor:
        ctx["next_url"] = page_url("/app/transactions", form, cursor=page.next_cursor)
    if cursor:
        ctx["first_url"] = page_url("/app/transactions", form)
    return render(request, "app/transactions.html", ctx, viewer=viewer)


@router.get("/app/transactions/{payment_id}", response_class=HTMLResponse)
async def transaction(request: Request, payment_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = business(viewer)
    async with unit_of_work(readonly=True) as session:
        p = await payments.get(session, tenant_id=tenant_id, payment_id=payment_id, initiated_by=_own(viewer))
        commission = p.commission_cents, p.commission_bps
        payment = PaymentOut.model_validate(p)
    return render(
        request,
        "app/transaction.html",
        {"p": payment, "commission_cents": commission[0], "commission_bps": commission[1]},
        viewer=viewer,
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
    async with unit_of_work(readonly=True) as session:
        tenant = await tenants.get(session, tenant_id)
        w = await wallets.view(session, tenant=tenant, settings=runtime().settings)
        postings = await wallets.postings(session, tenant_id=tenant_id, cursor=None, limit=POSTINGS)
        last = await payments.list_page(
            session, tenant_id=tenant_id, filters=TransactionFilter(source=PaymentSource.topup), limit=1
        )
        business_phone = tenant.phone
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
            "is_owner": viewer.business_role is Role.owner,
            "done": DONE.get(request.query_params.get("done", "")),
        },
        viewer=viewer,
        status=status,
    )


@router.get("/app/wallet", response_class=HTMLResponse)
async def wallet(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = business(viewer, *MANAGERS)
    return await _wallet_page(request, viewer, tenant_id)


@router.post("/app/wallet/topup", response_model=None)
async def topup(
    request: Request,
    viewer: CurrentViewer,
    amount: Annotated[str, Form(max_length=40)] = "",
    phone: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    # The API's rule (web/api/wallet.py): owner or manager.
    tenant_id = business(viewer, *MANAGERS, write=True)
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
    tenant_id = business(viewer, *MANAGERS)
    async with unit_of_work(readonly=True) as session:
        p = await payments.get(session, tenant_id=tenant_id, payment_id=payment_id)
        if p.source is not PaymentSource.topup:
            raise NotFound("No such top-up.")
        out = PaymentOut.model_validate(p)
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
    tenant_id = business(viewer, Role.owner, write=True)
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
    tenant_id = business(viewer, *MANAGERS)
    async with unit_of_work(readonly=True) as session:
        tenant = await tenants.get(session, tenant_id)
        rows = [
            {"invoice": i, "last_day": i.period_end - timedelta(seconds=1)}
            for i in await invoices.for_tenant(session, tenant_id=tenant_id)
        ]
        period = tenant.invoice_period.value
    return render(request, "app/invoices.html", {"rows": rows, "period": period}, viewer=viewer)


@router.get("/app/invoices/{invoice_id}", response_class=HTMLResponse)
async def invoice_detail(request: Request, invoice_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = business(viewer, *MANAGERS)
    async with unit_of_work(readonly=True) as session:
        invoice = await invoices.get(session, tenant_id=tenant_id, invoice_id=invoice_id)
        lines = await invoices.lines(session, invoice_id=invoice.id)
    return render(
        request,
        "app/invoice.html",
        {"i": invoice, "lines": lines, "last_day": invoice.period_end - timedelta(seconds=1)},
        viewer=viewer,
    )


@router.get("/app/invoices/{invoice_id}/export.xlsx", response_class=StreamingResponse)
async def invoice_xlsx(invoice_id: uuid.UUID, viewer: CurrentViewer) -> StreamingResponse:
    """The same file as GET /api/invoices/{id}/export-excel, from the same use case."""
    return xlsx_response(await export_invoice(viewer.actor, invoice_id))
