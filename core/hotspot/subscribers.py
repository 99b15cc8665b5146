"""A paid WiFi order becomes a voucher (portal and USSD purchases)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.events import subscribe
from core.hotspot.orders import payment_finalised
from core.payments.events import PaymentFinalised
from core.payments.models import PaymentSource


@subscribe(PaymentFinalised)
async def issue_voucher(session: AsyncSession, event: PaymentFinalised) -> None:
    if event.payment.source in (PaymentSource.portal, PaymentSource.ussd):
        await payment_finalised(session, payment=event.payment, tenant=event.tenant)
