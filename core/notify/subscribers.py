"""The merchant hears about their payments (Telegram, else SMS), from the outbox."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.events import subscribe
from core.notify.service import notify
from core.payments.events import PaymentFinalised


@subscribe(PaymentFinalised)
async def tell_the_merchant(session: AsyncSession, event: PaymentFinalised) -> None:
    await notify.payment_finalised(session, payment=event.payment, tenant=event.tenant)
