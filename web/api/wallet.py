from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from core.auth.models import Role
from core.billing.invoices import invoices
from core.billing.schemas import (
    InvoiceDetail,
    InvoiceLineOut,
    InvoiceOut,
    PostingPage,
    TopupIn,
    WalletOut,
    WalletSettingsIn,
)
from core.billing.wallet import wallets
from core.exports.xlsx import Column, build_xlsx
from core.money import parse_shillings
from core.payments.push import request_wallet_topup
from core.payments.schemas import PaymentOut
from core.phones import normalize_msisdn
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants
from web.deps import CurrentPrincipal, ReadSession
from web.exports import audited_xlsx

router = APIRouter(tags=["wallet"])


@router.get("/wallet")
async def get_wallet(who: CurrentPrincipal, session: ReadSession) -> WalletOut:
    """Balance, what is held for pushes in flight, billing mode, commission rate and this month's
    commission. Amounts are in cents."""
    who.require_role(Role.owner, Role.manager)
    tenant = await tenants.get(session, who.require_tenant())
    return await wallets.view(session, tenant=tenant, settings=runtime().settings)


@router.post("/wallet/topup", status_code=201)
async def topup(body: TopupIn, who: CurrentPrincipal) -> PaymentOut:
    """Top up the wallet by M-Pesa: an STK push to the business phone (or `phone`) through the
    platform's paybill. The wallet is credited when the payment succeeds."""
    who.require_role(Role.owner, Role.manager)
    amount = parse_shillings(body.amount)
    phone = normalize_msisdn(body.phone) if body.phone else None
    return await request_wallet_topup(
        tenant_id=who.require_tenant(), amount=amount, phone=phone, initiated_by=who.user_id
    )


@router.post("/wallet/settings")
async def wallet_settings(body: WalletSettingsIn, who: CurrentPrincipal) -> WalletOut:
    who.require_role(Role.owner)
    async with unit_of_work() as session:
        tenant = await tenants.get(session, who.require_tenant())
        await wallets.update_settings(session, tenant=tenant, data=body, settings=runtime().settings)
        await session.refresh(tenant)
        return await wallets.view(session, tenant=tenant, settings=runtime().settings)


@router.get("/wallet/ledger")
async def wallet_ledger(
    who: CurrentPrincipal,
    session: ReadSession,
    cursor: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> PostingPage:
    """Every posting on this business's accounts, newest first, with its cause."""
    who.require_role(Role.owner, Role.manager)
    return await wallets.postings(session, tenant_id=who.require_tenant(), cursor=cursor, limit=limit)


@router.get("/invoices")
async def list_invoices(who: CurrentPrincipal, session: ReadSession) -> list[InvoiceOut]:
    who.require_role(Role.owner, Role.manager)
    return [
        InvoiceOut.model_validate(i)
        for i in await invoices.for_tenant(session, tenant_id=who.require_tenant())
    ]


@router.get("/invoices/{invoice_id}")
async def get_invoice(invoice_id: uuid.UUID, who: CurrentPrincipal, session: ReadSession) -> InvoiceDetail:
    who.require_role(Role.owner, Role.manager)
    invoice = await invoices.get(session, tenant_id=who.require_tenant(), invoice_id=invoice_id)
    lines = await invoices.lines(session, invoice_id=invoice.id)
    return InvoiceDetail(
        **InvoiceOut.model_validate(invoice).model_dump(),
        lines=[
            InvoiceLineOut(
                created_at=r[0],
                phone=r[1],
                amount=r[2],
                receipt=r[3],
                commission_bps=r[4],
                commission_cents=r[5],
            )
            for r in lines
        ],
    )


INVOICE_COLUMNS = [
    Column("Date (EAT)", "datetime", 20),
    Column("Phone", "text", 15),
    Column("Payment (KES)", "money", 14),
    Column("M-Pesa receipt", "text", 14),
    Column("Rate (bps)", "int", 10),
    Column("Commission (KES)", "money", 16),
]


@router.get("/invoices/{invoice_id}/export-excel", response_class=StreamingResponse)
async def export_invoice(invoice_id: uuid.UUID, who: CurrentPrincipal) -> StreamingResponse:
    who.require_role(Role.owner, Role.manager)
    async with unit_of_work(readonly=True) as session:
        invoice = await invoices.get(session, tenant_id=who.require_tenant(), invoice_id=invoice_id)
        rows = await invoices.lines(session, invoice_id=invoice.id)

    async def batches():  # type: ignore[no-untyped-def]
        yield [(r[0], r[1], r[2], r[3], r[4], Decimal(r[5]) / 100) for r in rows]

    path, count = await build_xlsx(sheet_title=invoice.number, columns=INVOICE_COLUMNS, batches=batches())
    return await audited_xlsx(
        path,
        rows=count,
        name=invoice.number,
        action="export.invoice",
        tenant_id=invoice.tenant_id,
        user_id=who.user_id,
    )
