from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from core.billing.commission import (
    DEFAULT_RATE_SQL,
    FROM_WALLET,
    ON_INVOICE,
    CommissionSplit,
    commissions,
)
from core.billing.invoices import EAT
from core.billing.schemas import PostingOut, PostingPage, WalletOut, WalletSettingsIn
from core.config import Settings
from core.db import utcnow
from core.ledger.models import Account, AccountKind, Transfer
from core.tenants.models import Tenant


def month_start(now: datetime) -> datetime:
    return now.astimezone(EAT).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _account(kind: AccountKind, column: InstrumentedAttribute[int]) -> ColumnElement[int]:
    return (
        select(column)
        .where(Account.tenant_id == bindparam("tenant_id"), Account.kind == kind)
        .scalar_subquery()
    )


def _commission(*cond: ColumnElement[bool]) -> ColumnElement[int]:
    amount = Transfer.amount_cents
    return func.coalesce(func.sum(case((and_(*cond), amount), else_=0) if cond else amount), 0)


# What the wallet view reads, in one statement built once (it was five: two accounts, the platform's
# default rate, the month's commission; bench/bot_updates.py): the wallet's balance and reserve, the
# receivable's balance, the stored default rate, then the commission posted this month (`since`).
_WALLET_FIGURES = (
    _account(AccountKind.wallet, Account.balance_cents),
    _account(AccountKind.wallet, Account.reserved_cents),
    _account(AccountKind.receivable, Account.balance_cents),
    DEFAULT_RATE_SQL,
)
_COMMISSION = Transfer.tenant_id == bindparam("tenant_id"), Transfer.kind.in_([FROM_WALLET, ON_INVOICE])
_SINCE = Transfer.created_at >= bindparam("since")
_VIEW = select(*_WALLET_FIGURES, _commission()).where(*_COMMISSION, _SINCE)
# ... and with the commission's split since the start (`commissions.split_for`'s figures), for the
# dashboard: one statement for both.
_VIEW_AND_SPLIT = select(
    *_WALLET_FIGURES,
    _commission(_SINCE),
    _commission(Transfer.kind == FROM_WALLET),
    _commission(Transfer.kind == ON_INVOICE),
).where(*_COMMISSION)


class WalletService:
    async def view(self, session: AsyncSession, *, tenant: Tenant, settings: Settings) -> WalletOut:
        row = tuple((await session.execute(_VIEW, self._params(tenant))).one())
        return self._out(tenant, settings, row)

    async def view_and_split(
        self, session: AsyncSession, *, tenant: Tenant, settings: Settings
    ) -> tuple[WalletOut, CommissionSplit]:
        """`view` and `commissions.split_for`, from one read of the ledger (the dashboard's)."""
        row = tuple((await session.execute(_VIEW_AND_SPLIT, self._params(tenant))).one())
        split = commissions.split_of(
            from_wallet_cents=int(row[5]), on_invoice_cents=int(row[6]), receivable_cents=int(row[2] or 0)
        )
        return self._out(tenant, settings, row), split

    def _params(self, tenant: Tenant) -> dict[str, object]:
        return {"tenant_id": tenant.id, "since": month_start(utcnow())}

    def _out(self, tenant: Tenant, settings: Settings, row: tuple[Any, ...]) -> WalletOut:
        balance, reserved, receivable = (int(v or 0) for v in row[:3])  # 0 for an account never used
        floor = commissions.floor(tenant, settings)
        bps = commissions.rate_given(tenant, default_bps=commissions.default_from(row[3], settings))
        return WalletOut(
            balance_cents=balance,
            reserved_cents=reserved,
            available_cents=balance - reserved - floor,
            floor_cents=floor,
            low_balance_threshold_cents=commissions.threshold(tenant, settings),
            billing_mode=tenant.billing_mode,
            commission_bps=bps,
            commission_percent=f"{bps / 100:g}%",
            month_to_date_commission_cents=int(row[4]),
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
