"""Money follows payments: a customer payment's commission is posted (or its hold released), a
wallet top-up is credited. In the payment's own transaction, keyed by it, so once only."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.commission import commissions
from core.billing.topups import topups
from core.events import subscribe
from core.payments.events import PaymentFinalised
from core.payments.models import CUSTOMER_SOURCES, PaymentSource
from core.runtime import runtime


@subscribe(PaymentFinalised)
async def settle_commission(session: AsyncSession, event: PaymentFinalised) -> None:
    p = event.payment
    if p.source not in CUSTOMER_SOURCES:
        return
    if event.succeeded:
        await commissions.settle_success(session, payment=p, tenant=event.tenant, settings=runtime().settings)
    else:
        await commissions.release(session, payment=p)


@subscribe(PaymentFinalised)
async def credit_topup(session: AsyncSession, event: PaymentFinalised) -> None:
    if event.payment.source is PaymentSource.topup and event.succeeded:
        await topups.credit_wallet(
            session, payment=event.payment, tenant=event.tenant, settings=runtime().settings
        )
