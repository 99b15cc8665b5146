"""What a person or an integration can ask M-Pesa, from any entry point: the business's balance
(the latest per channel, or a fresh one) and the status of a receipt or a payment.

Questions go through a channel's Daraja initiator and are answered later (core/lookups/answers.py):
asking returns the pending lookup at once, and GET /api/lookups/{id} shows its answer. An API key asks
only through channels of its own mode and sees only its mode's lookups."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.errors import ChannelNotConfigured, Conflict, InvalidInput, ModeMismatch
from core.lookups.models import Lookup, LookupKind
from core.lookups.schemas import AccountOut, BalancesOut, ChannelBalanceOut, LookupOut
from core.lookups.service import ChannelBalance, lookups
from core.payments.service import payments
from core.payouts.channels import payout_channels
from core.tenants.channels import channels
from core.tenants.models import Mode, MpesaChannel

NO_INITIATOR = (
    "This business has no channel with an M-Pesa initiator yet: set one on a channel (PUT "
    "/api/channels/{id}/initiator) or add a payout channel (POST /api/payout-channels), then ask again."
)


def _requested_by(actor: Actor) -> uuid.UUID | None:
    return actor.user_id if actor.api_key_id is None else None


def _ensure_mode(channel: MpesaChannel, mode: Mode | None) -> None:
    if mode is not None and channel.mode is not mode:
        raise ModeMismatch(
            f"This is a {mode.value} key and the channel “{channel.name}” is a {channel.mode.value} one: a "
            f"key asks M-Pesa only through channels of its own mode. Use a {channel.mode.value} key."
        )


def _with_initiator(channel: MpesaChannel) -> MpesaChannel:
    if not channel.initiator_name:
        raise Conflict(
            f"The channel “{channel.name}” has no M-Pesa initiator, which is what M-Pesa is asked "
            f"through: set it (PUT /api/channels/{channel.id}/initiator, or `lipapush initiator set`) first."
        )
    return channel


async def _asking_channels(
    session: AsyncSession, actor: Actor, channel_id: uuid.UUID | None
) -> list[MpesaChannel]:
    tenant_id = actor.require_tenant()
    if channel_id is not None:
        channel = await channels.get(session, tenant_id=tenant_id, channel_id=channel_id)
        _ensure_mode(channel, actor.mode)
        return [_with_initiator(channel)]
    found = [
        c for c in await payout_channels(session, tenant_id=tenant_id, mode=actor.mode) if c.initiator_name
    ]
    if not found:
        raise ChannelNotConfigured(NO_INITIATOR)
    return found


def _balance_out(b: ChannelBalance) -> ChannelBalanceOut:
    c, done, latest = b.channel, b.balance, b.latest
    accounts = (done.result or {}).get("accounts", []) if done is not None else []
    return ChannelBalanceOut(
        channel_id=c.id,
        channel_name=c.name,
        kind=c.kind,
        environment=c.environment,
        mode=c.mode,
        short_code=c.business_short_code,
        initiator_verified=c.initiator_verified_at is not None,
        utility_cents=done.utility_cents if done else None,
        working_cents=done.working_cents if done else None,
        accounts=[
            AccountOut(name=a["name"], currency=a["currency"], available_cents=a["available_cents"])
            for a in accounts
        ],
        as_of=(done.answered_at or done.finished_at) if done else None,
        lookup_id=done.id if done else None,
        refreshing=latest is not None and latest.status.value == "pending",
        last_error=latest.result_desc
        if latest is not None and latest.status.value in ("failed", "timeout")
        else None,
    )


@use_case(Permission.balance_read, query=True)
async def balances(actor: Actor) -> BalancesOut:
    """The latest M-Pesa balance of each channel with an initiator (of the key's mode), with when
    M-Pesa gave it and whether a newer one is on its way."""
    async with unit_of_work(actor, readonly=True) as uow:
        rows = await payout_channels(uow.session, tenant_id=actor.require_tenant(), mode=actor.mode)
        found = await lookups.balances(uow.session, channels=[c for c in rows if c.initiator_name])
        return BalancesOut(channels=[_balance_out(b) for b in found])


@use_case(Permission.balance_read, recorded_by="the lookup rows: requested_by, kind, channel and answer")
async def refresh_balance(actor: Actor, *, channel_id: uuid.UUID | None = None) -> list[LookupOut]:
    """Ask M-Pesa for a fresh balance of one channel, or of every channel with an initiator; the
    answers come to GET /api/balance (and each lookup) within seconds."""
    async with unit_of_work(actor) as uow:
        asked = [
            await lookups.ask(
                uow.session, channel=c, kind=LookupKind.balance, requested_by=_requested_by(actor)
            )
            for c in await _asking_channels(uow.session, actor, channel_id)
        ]
        return [LookupOut.model_validate(lookup) for lookup in asked]


@use_case(Permission.transactions_lookup, recorded_by="the lookup row: requested_by, what was asked, answer")
async def lookup_status(
    actor: Actor,
    *,
    receipt: str | None = None,
    payment_id: uuid.UUID | None = None,
    channel_id: uuid.UUID | None = None,
) -> LookupOut:
    """Ask M-Pesa how a transaction ended, by its receipt or a payment's. The answer is stored on the
    lookup only: a payment's own state is settled by its callback or the STK query, never here."""
    if (receipt is None) == (payment_id is None):
        raise InvalidInput("receipt", "Give either receipt or payment_id.")
    async with unit_of_work(actor) as uow:
        session = uow.session
        tenant_id = actor.require_tenant()
        if payment_id is not None:
            payment = await payments.get(
                session,
                tenant_id=tenant_id,
                payment_id=payment_id,
                initiated_by=actor.own_payments_only,
                mode=actor.mode,
            )
            if not payment.receipt:
                raise Conflict(
                    "This payment has no M-Pesa receipt yet, and M-Pesa is asked about a transaction by "
                    "its receipt: a pending push is settled by its callback or the STK query on its own."
                )
            receipt = payment.receipt
            channel_id = channel_id or payment.channel_id
        found = await _asking_channels(session, actor, channel_id)
        if len(found) > 1:
            names = ", ".join(f"“{c.name}” ({c.id})" for c in found)
            raise InvalidInput(
                "channel_id",
                f"This business has several channels with an M-Pesa initiator ({names}): say which one "
                "received or sent this transaction with channel_id.",
            )
        lookup = await lookups.ask(
            session,
            channel=found[0],
            kind=LookupKind.status,
            requested_by=_requested_by(actor),
            transaction_id=receipt,
            payment_id=payment_id,
        )
        return LookupOut.model_validate(lookup)


@use_case(Permission.transactions_lookup, query=True)
async def get_lookup(actor: Actor, lookup_id: uuid.UUID) -> LookupOut:
    """One lookup and its answer; another business's id (or another mode's, for a key) is 404. A
    balance lookup also needs the right to read the balance."""
    async with unit_of_work(actor, readonly=True) as uow:
        lookup: Lookup = await lookups.get(
            uow.session, tenant_id=actor.require_tenant(), lookup_id=lookup_id, mode=actor.mode
        )
        if lookup.kind is LookupKind.balance:
            actor.require(Permission.balance_read)
        return LookupOut.model_validate(lookup)
