"""The customer book follows reversals: the money a reversed payment brought back out of the payer's
paid totals (the payment itself stays, as `reversed`)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from core.customers.models import Customer
from core.events import subscribe
from core.reversals.events import PaymentReversed


@subscribe(PaymentReversed)
async def uncount_paid(session: AsyncSession, event: PaymentReversed) -> None:
    p = event.payment
    await session.execute(
        update(Customer)
        .where(Customer.tenant_id == p.tenant_id, Customer.mode == p.mode, Customer.phone == p.phone)
        .values(paid_count=Customer.paid_count - 1, paid_total=Customer.paid_total - p.amount)
        .execution_options(synchronize_session=False)
    )
