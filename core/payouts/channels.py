"""Which channel a payout goes through, and whether it may.

A payout channel is any channel of the business with a Daraja initiator; a bulk-payment (`b2c`)
shortcode is the usual one (Safaricom pays out only from a B2C shortcode, so a paybill's initiator
mostly serves balance and status lookups and reversals). Without a `channel_id` the payout goes through
the business's only B2C channel (of the key's mode, for an API key), else its only channel with an
initiator; with several, the caller must name one. The channel must be in the caller's mode (a test
key never pays out from production, a live key never from a simulator or the sandbox) and its
initiator must be proven by a balance check (`initiator_verified_at`)."""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput, ModeMismatch
from core.payouts.errors import InitiatorNotVerified, NoPayoutChannel
from core.tenants.channels import channels
from core.tenants.models import ChannelKind, Mode, MpesaChannel

SET_INITIATOR = (
    "set its M-Pesa initiator name and password (PUT /api/channels/{id}/initiator, `lipapush initiator "
    "set`, or Settings → Channels): a balance check proves it within a minute"
)


async def payout_channels(
    session: AsyncSession, *, tenant_id: uuid.UUID, mode: Mode | None = None
) -> list[MpesaChannel]:
    """The channels a payout could go through: B2C shortcodes and any channel with an initiator, B2C
    ones first, then oldest first; of `mode` only when given."""
    rows = await session.scalars(
        select(MpesaChannel)
        .where(
            MpesaChannel.tenant_id == tenant_id,
            or_(MpesaChannel.kind == ChannelKind.b2c, MpesaChannel.initiator_name.is_not(None)),
        )
        .order_by(MpesaChannel.created_at, MpesaChannel.id)
    )
    found = [c for c in rows if mode is None or c.mode is mode]
    return sorted(found, key=lambda c: c.kind is not ChannelKind.b2c)


async def choose(
    session: AsyncSession, *, tenant_id: uuid.UUID, channel_id: uuid.UUID | None, mode: Mode | None
) -> MpesaChannel:
    """The channel a payout goes through (see the module's rule); 404 for another business's id."""
    if channel_id is not None:
        channel = await channels.get(session, tenant_id=tenant_id, channel_id=channel_id)
        ensure_mode(channel, mode)
        return channel
    candidates = await payout_channels(session, tenant_id=tenant_id, mode=mode)
    b2c = [c for c in candidates if c.kind is ChannelKind.b2c]
    pool = b2c or [c for c in candidates if c.initiator_name]
    if len(pool) == 1:
        return pool[0]
    if not pool:
        which = f"{mode.value} " if mode is not None else ""
        raise NoPayoutChannel(
            f"This business has no {which}payout channel yet: add its B2C shortcode with its initiator "
            "(POST /api/payout-channels, or `lipapush payout-channel add`), then pay out through it."
        )
    names = ", ".join(f"“{c.name}” ({c.id})" for c in pool)
    raise InvalidInput(
        "channel_id",
        f"This business has several payout channels ({names}): say which one with channel_id "
        "(GET /api/payout-channels lists them).",
    )


def ensure_mode(channel: MpesaChannel, mode: Mode | None) -> None:
    """An API key pays out only through a channel of its own mode; a person through any."""
    if mode is None or channel.mode is mode:
        return
    if mode is Mode.test:
        raise ModeMismatch(
            f"This is a test key (lp_test_…) and the channel “{channel.name}” is a production one: test "
            "keys never move real money. Use a live key (lp_live_…) for real payouts, or a payout channel "
            "in the simulator or the sandbox for tests."
        )
    raise ModeMismatch(
        f"This is a live key (lp_live_…) and the channel “{channel.name}” is a "
        f"{channel.environment.value} one: live keys pay out only through a production channel. Use a "
        "test key (lp_test_…) to try payouts there, or add the production B2C shortcode "
        "(POST /api/payout-channels, environment production)."
    )


def ensure_can_pay_out(channel: MpesaChannel) -> MpesaChannel:
    """Refused (409) unless the channel's initiator is set and proven, saying what to do."""
    if not channel.initiator_name or not channel.initiator_password_enc:
        raise InitiatorNotVerified(
            f"The channel “{channel.name}” cannot pay out: it has no M-Pesa initiator. To pay out, "
            + SET_INITIATOR.replace("{id}", str(channel.id))
            + "."
        )
    if channel.initiator_verified_at is None:
        why = (
            f" The last check said: {channel.initiator_error}"
            if channel.initiator_error
            else " Its balance check has not answered yet: try again in a minute."
        )
        raise InitiatorNotVerified(
            f"The channel “{channel.name}” cannot pay out yet: its M-Pesa initiator is not verified.{why} "
            "To fix it, " + SET_INITIATOR.replace("{id}", str(channel.id)) + "."
        )
    return channel
