"""A new channel is verified by its KES 1 test push: its outcome verifies it or says why not."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.events import subscribe
from core.payments.events import PaymentFinalised
from core.payments.models import PaymentSource
from core.tenants.models import MpesaChannel
from core.tenants.service import tenants


@subscribe(PaymentFinalised)
async def verify_channel(session: AsyncSession, event: PaymentFinalised) -> None:
    p = event.payment
    if p.source is not PaymentSource.onboarding:
        return
    channel = await session.get(MpesaChannel, p.channel_id)
    if channel is None or channel.verification_payment_id != p.id:
        return
    if event.succeeded:
        await tenants.mark_verified(session, channel=channel)
    else:
        await tenants.mark_verification_failed(session, channel=channel, reason=event.result_desc)
