"""The wallet and invoices, as every entry point uses them: view, top up, set the alert level, read
invoices. The audit row of a settings change is written here, so the API, the bot and the panel all
leave the same `wallet.settings_changed` row."""

from __future__ import annotations

import uuid
from typing import Any

from core.access.actor import Actor, ActorKind
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.billing.invoices import invoices
from core.billing.models import Invoice
from core.billing.schemas import (
    InvoiceDetail,
    InvoiceLineOut,
    InvoiceOut,
    PostingPage,
    WalletOut,
    WalletSettingsIn,
)
from core.billing.wallet import wallets
from core.money import parse_shillings
from core.payments.push import request_wallet_topup
from core.payments.schemas import PaymentOut
from core.runtime import runtime
from core.tenants.service import tenants


@use_case(Permission.wallet_read, query=True)
async def view_wallet(actor: Actor) -> WalletOut:
    """Balance, what is held for pushes in flight, billing mode, commission rate and what is owed."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await tenants.get(uow.session, actor.require_tenant())
        return await wallets.view(uow.session, tenant=tenant, settings=runtime().settings)


@use_case(Permission.wallet_settings, audit="wallet.settings_changed")
async def change_wallet_settings(actor: Actor, data: WalletSettingsIn) -> WalletOut:
    """The low-balance alert level (and the invoice period). Setting a level re-arms the alert and
    checks it against the balance at once."""
    async with unit_of_work(actor) as uow:
        tenant = await tenants.get(uow.session, actor.require_tenant())
        before = tenant.low_balance_threshold_cents
        period_before = tenant.invoice_period
        await wallets.update_settings(uow.session, tenant=tenant, data=data, settings=runtime().settings)
        detail: dict[str, Any] = {
            "low_balance_threshold_cents": tenant.low_balance_threshold_cents,
            "before": before,
        }
        if data.invoice_period is not None:
            detail |= {"invoice_period": tenant.invoice_period.value, "period_before": period_before.value}
        await uow.audit("wallet.settings_changed", **detail)
        await uow.session.refresh(tenant)
        return await wallets.view(uow.session, tenant=tenant, settings=runtime().settings)


@use_case(
    Permission.wallet_topup,
    recorded_by="the top-up payment (initiated_by, source topup); an admin's is also audited with it",
)
async def request_topup(
    actor: Actor,
    *,
    amount: int,
    phone: str | None = None,
    notify_phone: str | None = None,
    idempotency_key: str | None = None,
    defer: bool = False,
) -> PaymentOut:
    """An STK push to the business's phone (or `phone`) through the platform's own paybill; its
    success credits the wallet once."""
    impersonating = actor.kind is ActorKind.impersonation
    return await request_wallet_topup(
        tenant_id=actor.require_tenant(),
        amount=parse_shillings(amount),
        phone=phone,
        initiated_by=actor.audit_user_id,
        notify_phone=notify_phone,
        idempotency_key=idempotency_key,
        defer=defer,
        # An admin moving money for a business is audited with the payment, in one transaction.
        audit_detail={"impersonating": True} if impersonating else None,
    )


@use_case(Permission.wallet_read, query=True)
async def wallet_postings(actor: Actor, *, cursor: int | None, limit: int) -> PostingPage:
    async with unit_of_work(actor, readonly=True) as uow:
        return await wallets.postings(
            uow.session, tenant_id=actor.require_tenant(), cursor=cursor, limit=limit
        )


@use_case(Permission.invoices_read, query=True)
async def list_invoices(actor: Actor) -> list[Invoice]:
    async with unit_of_work(actor, readonly=True) as uow:
        return await invoices.for_tenant(uow.session, tenant_id=actor.require_tenant())


@use_case(Permission.invoices_read, query=True)
async def invoice_detail(actor: Actor, invoice_id: uuid.UUID) -> InvoiceDetail:
    async with unit_of_work(actor, readonly=True) as uow:
        invoice = await invoices.get(uow.session, tenant_id=actor.require_tenant(), invoice_id=invoice_id)
        lines = await invoices.lines(uow.session, invoice_id=invoice.id)
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
