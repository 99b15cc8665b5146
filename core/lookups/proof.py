"""A channel's initiator is proven by a balance check, as its till is by the KES 1 push.

A balance answer with ResultCode 0 for a lookup sent with the initiator as it is now (made at or after
`initiator_set_at`) marks it verified; a refusal names what is wrong in `initiator_error`. A later
refusal that says the credentials themselves are wrong (2001 and the other initiator codes, from a
balance check or a payout's result) clears the verification too: every payout through that initiator
would fail the same way, so none is sent until the owner sets it again. Any other failure (M-Pesa busy,
no answer) leaves a proven initiator alone and only explains an unproven one."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.lookups.models import Lookup
from core.tenants.models import MpesaChannel

# ResultCodes that mean the initiator itself is unusable (refs/daraja.md §2.2, §7): invalid
# credentials, unknown or inactive initiator, a missing role, a locked password.
CREDENTIAL_CODES = frozenset({"2001", "18", "20", "21", "22", "8006"})


def initiator_failed(channel: MpesaChannel, message: str) -> None:
    channel.initiator_error = message
    channel.initiator_verified_at = None


async def apply_balance_answer(
    session: AsyncSession, lookup: Lookup, *, ok: bool, code: str | None, message: str
) -> None:
    """What a balance lookup's answer (or its refusal) says about its channel's initiator."""
    channel = await session.get(MpesaChannel, lookup.channel_id)
    if channel is None or channel.initiator_set_at is None or lookup.created_at < channel.initiator_set_at:
        return  # sent with an initiator since replaced: it proves nothing about the current one
    if ok:
        if channel.initiator_verified_at is None:
            channel.initiator_verified_at = utcnow()
        channel.initiator_error = None
    elif code in CREDENTIAL_CODES or channel.initiator_verified_at is None:
        initiator_failed(channel, message)
