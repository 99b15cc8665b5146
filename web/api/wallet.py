from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from core.billing import use_cases
from core.billing.schemas import InvoiceDetail, InvoiceOut, PostingPage, TopupIn, WalletOut, WalletSettingsIn
from core.exports.use_cases import export_invoice as export_invoice_uc
from core.payments.schemas import PaymentOut
from core.phones import normalize_msisdn
from web.deps import CurrentActor
from web.exports import xlsx_response
from web.openapi import PUSH_ERRORS

router = APIRouter(tags=["wallet"])


@router.get("/wallet")
async def get_wallet(actor: CurrentActor) -> WalletOut:
    """Balance, what is held for pushes in flight, billing mode, commission rate and this month's
    commission. Amounts are in cents."""
    return await use_cases.view_wallet(actor)


@router.post("/wallet/topup", status_code=201, responses=PUSH_ERRORS)
async def topup(body: TopupIn, actor: CurrentActor) -> PaymentOut:
    """Top up the wallet by M-Pesa: an STK push to the business phone (or `phone`) through the
    platform's paybill. The wallet is credited when the payment succeeds."""
    phone = normalize_msisdn(body.phone) if body.phone else None
    return await use_cases.request_topup(actor, amount=body.amount, phone=phone)


@router.post("/wallet/settings")
async def wallet_settings(body: WalletSettingsIn, actor: CurrentActor) -> WalletOut:
    """The low-balance alert level (KES) and the invoice period. Audited as wallet.settings_changed."""
    return await use_cases.change_wallet_settings(actor, body)


@router.get("/wallet/ledger")
async def wallet_ledger(
    actor: CurrentActor,
    cursor: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> PostingPage:
    """Every posting on this business's accounts, newest first, with its cause."""
    return await use_cases.wallet_postings(actor, cursor=cursor, limit=limit)


@router.get("/invoices")
async def list_invoices(actor: CurrentActor) -> list[InvoiceOut]:
    return [InvoiceOut.model_validate(i) for i in await use_cases.list_invoices(actor)]


@router.get("/invoices/{invoice_id}")
async def get_invoice(invoice_id: uuid.UUID, actor: CurrentActor) -> InvoiceDetail:
    return await use_cases.invoice_detail(actor, invoice_id)


@router.get("/invoices/{invoice_id}/export-excel", response_class=StreamingResponse)
async def export_invoice(invoice_id: uuid.UUID, actor: CurrentActor) -> StreamingResponse:
    return xlsx_response(await export_invoice_uc(actor, invoice_id))
