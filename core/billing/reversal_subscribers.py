"""A reversed payment earns no commission: every commission posting it carried is answered by a
compensating transfer the other way (revenue back to the wallet, or off the receivable, so the next
invoice credits it), keyed by the reversal so it is posted once. History is never edited."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.integrity import COMMISSION_KINDS, REFUND_KINDS
from core.events import subscribe
from core.ledger.models import Transfer
from core.ledger.service import AccountRef, ledger
from core.reversals.events import PaymentReversed

# Each commission kind's way back (core.billing.integrity.REFUND_KINDS, in the same order).
REFUND_OF = dict(zip(COMMISSION_KINDS, REFUND_KINDS, strict=True))


@subscribe(PaymentReversed)
async def refund_commission(session: AsyncSession, event: PaymentReversed) -> None:
    p = event.payment
    posted = list(
        await session.scalars(
            select(Transfer).where(Transfer.payment_id == p.id, Transfer.kind.in_(COMMISSION_KINDS))
        )
    )
    if not posted:
        return
    await ledger.lock_in_order(
        session, *{a for t in posted for a in (t.debit_account_id, t.credit_account_id)}
    )
    for t in posted:
        await ledger.transfer(
            session,
            tenant_id=p.tenant_id,
            cause_type="reversal",
            cause_id=str(event.reversal.id),
            payment_id=p.id,
            kind=REFUND_OF[t.kind],
            debit=AccountRef(t.credit_account_id),
            credit=AccountRef(t.debit_account_id),
            amount_cents=t.amount_cents,
            memo=f"commission back: {p.receipt} reversed",
        )
