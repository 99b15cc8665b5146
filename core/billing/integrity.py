"""`lipapush ledger check`: the ledger and the payments agree, to the cent."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.ledger.models import Account, AccountKind, Transfer
from core.ledger.payouts import check_payouts
from core.ledger.service import LedgerProblem, ledger
from core.payments.models import CUSTOMER_SOURCES, Payment, PaymentSource, PaymentStatus
from core.tenants.models import Mode

COMMISSION_KINDS = ("commission.wallet", "commission.receivable")
# A reversed payment's commission, posted back (core/billing/reversal_subscribers.py).
REFUND_KINDS = ("commission.refund.wallet", "commission.refund.receivable")


async def check_all(session: AsyncSession, *, tenant_id: uuid.UUID | None = None) -> list[LedgerProblem]:
    """The whole database (what `lipapush ledger check` proves), or with `tenant_id` only that
    business's accounts and payments: a test checks the books it wrote, whatever other tests left."""

    def mine(column: Any) -> list[ColumnElement[bool]]:  # no condition: the whole database
        return [] if tenant_id is None else [column == tenant_id]

    problems = await ledger.check(session) if tenant_id is None else await _balances(session, tenant_id)

    posted = (
        select(Transfer.payment_id.label("pid"), func.sum(Transfer.amount_cents).label("cents"))
        .where(Transfer.kind.in_(COMMISSION_KINDS))
        .group_by(Transfer.payment_id)
        .subquery()
    )
    # every successful customer payment carries exactly its commission; nothing else carries any
    rows = (
        await session.execute(
            select(Payment.id, Payment.status, Payment.commission_cents, func.coalesce(posted.c.cents, 0))
            .outerjoin(posted, posted.c.pid == Payment.id)
            .where(Payment.source.in_(list(CUSTOMER_SOURCES)), *mine(Payment.tenant_id))
            .where(
                (
                    Payment.status.in_([PaymentStatus.success, PaymentStatus.reversed])
                    & (func.coalesce(posted.c.cents, 0) != Payment.commission_cents)
                )
                | (
                    Payment.status.not_in([PaymentStatus.success, PaymentStatus.reversed])
                    & (func.coalesce(posted.c.cents, 0) != 0)
                )
            )
        )
    ).all()
    for pid, status, want, got in rows:
        earned = status in (PaymentStatus.success, PaymentStatus.reversed)
        problems.append(
            LedgerProblem(
                "commission",
                f"payment {pid} ({status}) should carry {want if earned else 0} "
                f"cents of commission but carries {got}",
            )
        )

    # a reversed payment's commission went back exactly once; nothing else had any back
    refunded = (
        select(Transfer.payment_id.label("pid"), func.sum(Transfer.amount_cents).label("cents"))
        .where(Transfer.kind.in_(REFUND_KINDS))
        .group_by(Transfer.payment_id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(Payment.id, Payment.status, Payment.commission_cents, func.coalesce(refunded.c.cents, 0))
            .outerjoin(refunded, refunded.c.pid == Payment.id)
            .where(*mine(Payment.tenant_id))
            .where(
                (
                    (Payment.status == PaymentStatus.reversed)
                    & (func.coalesce(refunded.c.cents, 0) != Payment.commission_cents)
                )
                | ((Payment.status != PaymentStatus.reversed) & (func.coalesce(refunded.c.cents, 0) != 0))
            )
        )
    ).all()
    for pid, status, want, got in rows:
        problems.append(
            LedgerProblem(
                "reversal",
                f"payment {pid} ({status}) should have {want if status == 'reversed' else 0} cents of "
                f"commission back but has {got}",
            )
        )

    topped = (
        select(Transfer.payment_id.label("pid"), func.sum(Transfer.amount_cents).label("cents"))
        .where(Transfer.kind == "topup")
        .group_by(Transfer.payment_id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(Payment.id, Payment.status, Payment.amount, func.coalesce(topped.c.cents, 0))
            .outerjoin(topped, topped.c.pid == Payment.id)
            .where(Payment.source == PaymentSource.topup, *mine(Payment.tenant_id))
            .where(
                (
                    (Payment.status == PaymentStatus.success)
                    & (func.coalesce(topped.c.cents, 0) != Payment.amount * 100)
                    # A test-mode top-up credits in development only (core.billing.topups): in
                    # production it moved no money and rightly credited nothing.
                    & ~((Payment.mode == Mode.test) & (func.coalesce(topped.c.cents, 0) == 0))
                )
                | ((Payment.status != PaymentStatus.success) & (func.coalesce(topped.c.cents, 0) != 0))
            )
        )
    ).all()
    for pid, status, amount, got in rows:
        problems.append(LedgerProblem("topup", f"top-up {pid} ({status}, KES {amount}) credited {got} cents"))

    # what a wallet holds back equals what its pending pushes reserved
    held = (
        select(Payment.tenant_id.label("tid"), func.sum(Payment.reserved_cents).label("cents"))
        .where(Payment.status == PaymentStatus.pending)
        .group_by(Payment.tenant_id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(Account.id, Account.tenant_id, Account.reserved_cents, func.coalesce(held.c.cents, 0))
            .outerjoin(held, held.c.tid == Account.tenant_id)
            .where(
                Account.kind == AccountKind.wallet,
                Account.reserved_cents != func.coalesce(held.c.cents, 0),
                *mine(Account.tenant_id),
            )
        )
    ).all()
    for aid, tid, reserved, want in rows:
        problems.append(
            LedgerProblem(
                "reserved",
                f"wallet {aid} of tenant {tid} reserves {reserved} cents; its pending pushes hold {want}",
            )
        )
    # money out: every live payout M-Pesa paid posted exactly once, nothing else, none left in flight
    problems += await check_payouts(session, tenant_id=tenant_id)
    return problems


async def _balances(session: AsyncSession, tenant_id: uuid.UUID) -> list[LedgerProblem]:
    """`ledger.check` for one business's accounts: each balance equals Σ credits − Σ debits of its
    transfers, and nothing reserved is negative (the same rules and wording, scoped)."""
    mine = select(Account.id).where(Account.tenant_id == tenant_id).scalar_subquery()
    credits = (
        select(Transfer.credit_account_id.label("aid"), func.sum(Transfer.amount_cents).label("s"))
        .where(Transfer.credit_account_id.in_(mine))
        .group_by(Transfer.credit_account_id)
        .subquery()
    )
    debits = (
        select(Transfer.debit_account_id.label("aid"), func.sum(Transfer.amount_cents).label("s"))
        .where(Transfer.debit_account_id.in_(mine))
        .group_by(Transfer.debit_account_id)
        .subquery()
    )
    expected = func.coalesce(credits.c.s, 0) - func.coalesce(debits.c.s, 0)
    rows = (
        await session.execute(
            select(Account.id, Account.kind, Account.balance_cents, expected)
            .outerjoin(credits, credits.c.aid == Account.id)
            .outerjoin(debits, debits.c.aid == Account.id)
            .where(Account.tenant_id == tenant_id, Account.balance_cents != expected)
        )
    ).all()
    problems = [
        LedgerProblem(
            "balance",
            f"account {aid} ({kind} of tenant {tenant_id}) holds {balance} cents but its transfers "
            f"sum to {want}",
        )
        for aid, kind, balance, want in rows
    ]
    negative = await session.execute(
        select(Account.id, Account.reserved_cents).where(
            Account.tenant_id == tenant_id, Account.reserved_cents < 0
        )
    )
    problems += [LedgerProblem("reserved", f"account {aid} has negative reserved {r}") for aid, r in negative]
    return problems
