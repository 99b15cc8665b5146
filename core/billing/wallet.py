from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.billing.commission import commissions
from core.billing.invoices import EAT
from core.billing.schemas import PostingOut, PostingPage, WalletOut, WalletSettingsIn
from core.config import Settings
from core.db import utcnow
from core.ledger.models import Account, AccountKind, Transfer
from core.ledger.service import ledger
from core.tenants.models import Tenant


def month_start(now: datetime) -> datetime:
    return now.astimezone(EAT).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class WalletService:
    async def view(self, session: AsyncSession, *, tenant: Tenant, settings: Settings) -> WalletOut:
        balance, reserved = await ledger.balance(session, tenant_id=tenant.id, kind=AccountKind.wallet)
        receivable, _ = await ledger.balance(session, tenant_id=tenant.id, kind=AccountKind.receivable)
        floor = commissions.floor(tenant, settings)
        bps = await commissions.rate_for(session, tenant=tenant, settings=settings)
        return WalletOut(
            balance_cents=balance,
            reserved_cents=reserved,
            available_cents=balance - reserved - floor,
            floor_cents=floor,
            low_balance_threshold_cents=commissions.threshold(tenant, settings),
            billing_mode=tenant.billing_mode,
            commission_bps=bps,
            commission_percent=f"{bps / 100:g}%",
            month_to_date_commission_cents=await commissions.commission_for(
                session, tenant_id=tenant.id, since=month_start(utcnow())
            ),
            owed_on_invoice_cents=-receivable,
            invoice_period=tenant.invoice_period,
            billing_hold=tenant.billing_hold,
            business_phone=tenant.phone,
        )

    async def update_settings(
        self, session: AsyncSession, *, tenant: Tenant, data: WalletSettingsIn, settings: Settings
    ) -> None:
        if data.low_balance_threshold is not None:
            tenant.low_balance_threshold_cents = data.low_balance_threshold * 100
            tenant.low_balance_alerted = False  # re-evaluated against the new level just below
            await session.flush()
            await commissions.check_low_balance(session, tenant=tenant, settings=settings)
        if data.invoice_period is not None:
            tenant.invoice_period = data.invoice_period
        await session.flush()

    async def postings(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, cursor: int | None, limit: int
    ) -> PostingPage:
        debit, credit = aliased(Account), aliased(Account)
        stmt = (
            select(Transfer, debit.kind, credit.kind)
            .join(debit, debit.id == Transfer.debit_account_id)
            .join(credit, credit.id == Transfer.credit_account_id)
            .where(
                or_(debit.tenant_id == tenant_id, credit.tenant_id == tenant_id),
                Transfer.tenant_id == tenant_id,
            )
            .order_by(Transfer.id.desc())
            .limit(limit + 1)
        )
        if cursor is not None:
            stmt = stmt.where(Transfer.id < cursor)
        rows = (await session.execute(stmt)).all()
        more = len(rows) > limit
        items = []
        for t, dkind, ckind in rows[:limit]:
            effect = (
                t.amount_cents
                if ckind == AccountKind.wallet
                else -t.amount_cents
                if dkind == AccountKind.wallet
                else 0
            )
            items.append(
                PostingOut(
                    id=t.id,
                    created_at=t.created_at,
                    kind=t.kind,
                    cause_type=t.cause_type,
                    cause_id=t.cause_id,
                    payment_id=t.payment_id,
                    amount_cents=t.amount_cents,
                    debit=str(dkind),
                    credit=str(ckind),
                    wallet_effect_cents=effect,
                    memo=t.memo,
                )
            )
        return PostingPage(items=items, next_cursor=items[-1].id if more and items else None)


wallets = WalletService()
