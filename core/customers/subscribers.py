"""The customer book follows payments: a success adds to the customer's paid totals, in the book of
the payment's mode (test or live)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.customers.service import customers
from core.db import utcnow
from core.events import subscribe
from core.payments.events import PaymentFinalised
from core.payments.models import CUSTOMER_SOURCES


@subscribe(PaymentFinalised)
async def count_paid(session: AsyncSession, event: PaymentFinalised) -> None:
    p = event.payment
    if event.succeeded and p.source in CUSTOMER_SOURCES:
        await customers.record_paid(
            session,
            tenant_id=p.tenant_id,
            mode=p.mode,
            phone=p.phone,
            amount=p.amount,
            at=p.completed_at or utcnow(),
        )
