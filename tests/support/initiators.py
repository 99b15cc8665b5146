"""A channel with a proven M-Pesa initiator, set directly: what setting and proving one does is tested
with its own use case; tests of what an initiator is for (reversals, payouts) start from one."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from core.db import utcnow
from core.runtime import runtime, unit_of_work
from core.tenants.models import MpesaChannel

INITIATOR = ("apiop37", "Safaricom#2026")


async def give_initiator(
    tenant_id: uuid.UUID, *, name: str = INITIATOR[0], password: str = INITIATOR[1]
) -> None:
    async with unit_of_work() as session:
        channel = await session.scalar(
            select(MpesaChannel).where(MpesaChannel.tenant_id == tenant_id, MpesaChannel.is_primary)
        )
        assert channel is not None
        channel.initiator_name = name
        channel.initiator_password_enc = runtime().secrets.encrypt(password)
        channel.initiator_set_at = channel.initiator_verified_at = utcnow()
