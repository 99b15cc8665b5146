"""`lipapush ledger check`: the ledger and the payments agree, to the cent."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.ledger.models import Account, AccountKind, Transfer
from core.ledger.service import LedgerProblem, ledger
from core.payments.models import CUSTOMER_SOURCES, Payment, PaymentSource, PaymentStatus

COMMISSION_KINDS = ("commission.wallet", "commission.receivable")


async def check_all(session: AsyncSession) -> list[LedgerProblem]:
    problems = await ledger.check(session)

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
            .where(Payment.source.in_(list(CUSTOMER_SOURCES)))
            .where(
                (
                    (Payment.status == PaymentStatus.success)
                    & (func.coalesce(posted.c.cents, 0) != Payment.commission_cents)
                )
                | ((Payment.status != PaymentStatus.success) & (func.coalesce(posted.c.cents, 0) != 0))
            )
        )
    ).all()
    for pid, status, want, got in rows:
        problems.append(
            LedgerProblem(
                "commission",
                f"payment {pid} ({status}) should carry {want if status == 'success' else 0} "
                f"cents of commission but carries {got}",
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
            .where(Payment.source == PaymentSource.topup)
            .where(
                (
                    (Payment.status == PaymentStatus.success)
                    & (func.coalesce(topped.c.cents, 0) != Payment.amount * 100)
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
                Account.kind == AccountKind.wallet, Account.reserved_cents != func.coalesce(held.c.cents, 0)
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
    return problems
