"""A channel's Daraja initiator and the business's B2C payout channels, from every entry point.

Setting an initiator encrypts its password (the channel's SecretBox, as the consumer secret), forgets
any earlier proof, audits the change (the name, never the password) and sends a balance check after
commit: its ResultCode 0 marks the initiator verified (`initiator_verified_at`), a refusal explains
itself in `initiator_error` (core.lookups.proof). Payouts go only through a verified one.

A payout channel is a `b2c` channel: never primary, never an app's, never prompted for a push (its
passkey is an encrypted empty string); named like every channel (unique in the business)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.crypto import mask_secret
from core.db import utcnow
from core.errors import Conflict
from core.lookups.models import LookupKind
from core.lookups.service import lookups
from core.names import ensure_name_free
from core.payouts.channels import payout_channels
from core.runtime import runtime
from core.tenants.channels import MAX_CHANNELS, channels, clean_name, name_taken
from core.tenants.initiator_schemas import (
    InitiatorIn,
    InitiatorOut,
    PayoutChannelIn,
    PayoutChannelOut,
    initiator_out,
)
from core.tenants.models import ChannelKind, MpesaChannel

SIMULATOR_KEY = "simulator-key"
SIMULATOR_SECRET = "simulator-secret"


@dataclass(frozen=True)
class InitiatorSet:
    initiator: InitiatorOut
    lookup_id: uuid.UUID


def _who(actor: Actor) -> uuid.UUID | None:
    return actor.user_id if actor.api_key_id is None else None


async def _set_initiator(
    session: AsyncSession, channel: MpesaChannel, *, name: str, password: str, actor: Actor
) -> uuid.UUID:
    """Store the initiator, unproven, and ask for the balance that proves it (sent after commit)."""
    channel.initiator_name = name
    channel.initiator_password_enc = runtime().secrets.encrypt(password)
    channel.initiator_set_at = utcnow()
    channel.initiator_verified_at = None
    channel.initiator_error = None
    await session.flush()
    lookup = await lookups.ask(session, channel=channel, kind=LookupKind.balance, requested_by=_who(actor))
    return lookup.id


@use_case(Permission.channel_manage, audit="channel.initiator_set")
async def set_initiator(actor: Actor, channel_id: uuid.UUID, data: InitiatorIn) -> InitiatorSet:
    """Set (or replace) a channel's initiator; it is unverified until its balance check answers."""
    async with unit_of_work(actor) as uow:
        channel = await channels.get(uow.session, tenant_id=actor.require_tenant(), channel_id=channel_id)
        replaced = channel.initiator_name is not None
        lookup_id = await _set_initiator(
            uow.session,
            channel,
            name=data.initiator_name,
            password=data.initiator_password.get_secret_value(),
            actor=actor,
        )
        await uow.audit(
            "channel.initiator_set",
            target=str(channel.id),
            channel=channel.name,
            initiator_name=channel.initiator_name,
            replaced=replaced,
        )
        return InitiatorSet(initiator_out(channel, lookup_id), lookup_id)


@use_case(Permission.channel_manage, audit="channel.payout_channel_added")
async def add_payout_channel(actor: Actor, data: PayoutChannelIn) -> PayoutChannelOut:
    """A B2C short code of the business with its Daraja app and initiator; proven by a balance check
    like any initiator. Test or live by its environment, like every channel."""
    rt = runtime()
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor) as uow:
        session = uow.session
        name = clean_name(data.name)
        await ensure_name_free(session, MpesaChannel, tenant_id=tenant_id, name=name, taken=name_taken(name))
        count = int(
            await session.scalar(
                select(func.count(MpesaChannel.id)).where(MpesaChannel.tenant_id == tenant_id)
            )
            or 0
        )
        if count >= MAX_CHANNELS:
            raise Conflict(
                f"This business already has {MAX_CHANNELS} channels, the most it may hold: give an unused "
                "one a new initiator (PUT /api/channels/{id}/initiator) instead of adding another."
            )
        key = data.consumer_key.get_secret_value() if data.consumer_key else SIMULATOR_KEY
        secret = data.consumer_secret.get_secret_value() if data.consumer_secret else SIMULATOR_SECRET
        channel = MpesaChannel(
            tenant_id=tenant_id,
            name=name,
            is_primary=False,
            environment=data.environment,
            kind=ChannelKind.b2c,
            business_short_code=data.short_code,
            till_number=None,
            consumer_key_enc=rt.secrets.encrypt(key),
            consumer_secret_enc=rt.secrets.encrypt(secret),
            passkey_enc=rt.secrets.encrypt(""),  # never pushes: no passkey
            callback_token=secrets.token_hex(24),
        )
        session.add(channel)
        lookup_id = await _set_initiator(
            session,
            channel,
            name=data.initiator_name,
            password=data.initiator_password.get_secret_value(),
            actor=actor,
        )
        await uow.audit(
            "channel.payout_channel_added",
            target=str(channel.id),
            channel=name,
            environment=data.environment.value,
            short_code=data.short_code,
            initiator_name=channel.initiator_name,
        )
        return payout_channel_out(channel, lookup_id)


def payout_channel_out(channel: MpesaChannel, lookup_id: uuid.UUID | None = None) -> PayoutChannelOut:
    box = runtime().secrets
    return PayoutChannelOut(
        id=channel.id,
        name=channel.name,
        kind=channel.kind,
        environment=channel.environment,
        mode=channel.mode,
        short_code=channel.business_short_code,
        consumer_key=mask_secret(box.decrypt(channel.consumer_key_enc)),
        initiator=initiator_out(channel, lookup_id),
        created_at=channel.created_at,
    )


@use_case(Permission.payouts_read, query=True)
async def list_payout_channels(actor: Actor) -> list[PayoutChannelOut]:
    """The channels a payout can go through (B2C short codes first, then any with an initiator), of
    the key's mode for an API key, each with where its initiator stands."""
    async with unit_of_work(actor, readonly=True) as uow:
        rows = await payout_channels(uow.session, tenant_id=actor.require_tenant(), mode=actor.mode)
        return [payout_channel_out(c) for c in rows]
