"""A payout in two steps, for callers that act on someone else's word (an AI agent through MCP).

The first step checks everything the payout itself would (who may, the channel and its initiator, the
business active, the per-payout and daily limits) and writes nothing but a confirmation token and its
audit row; it returns what would be sent, so the agent can show its person "Send KES 1,500 to
0712 345 678 through “Main B2C”?". The second step, with that token, records the payout exactly as
the first step described it: nothing sent with the token can change the phone, amount or channel.

A token is single-use and belongs to the key that asked (core.confirmations.service). The payout made
with it carries the Idempotency-Key the first step was given, else `confirmation:<id>`, so two racing
second steps, or a second step retried after a crash, make one payout; the one that did not spend the
token is told so.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.confirmations import service as confirmations
from core.confirmations.models import ConfirmAction
from core.db import utcnow
from core.payouts import channels as payout_channels
from core.payouts.limits import check_limits, limits_of, sent_today
from core.payouts.models import PayoutCommand
from core.payouts.schemas import PayoutIn, PayoutOut
from core.payouts.service import clean_key
from core.payouts.use_cases import ensure_active, record_payout, with_payout_grant
from core.phones import mask_msisdn
from core.runtime import runtime
from core.tenants.models import Mode
from core.tenants.service import tenants

NEXT_STEP = (
    "Nothing was sent. Show this summary to the person you act for; only if they agree, call again "
    "with confirmation_token (it works once, for this key, until expires_at)."
)


class PayoutSummary(BaseModel):
    phone: str
    amount: int = Field(description="Whole shillings")
    name: str | None
    reference: str | None
    occasion: str | None
    command: PayoutCommand
    channel_id: uuid.UUID
    channel_name: str
    mode: Mode = Field(description="test: simulator or sandbox, never real money; live: real money")
    per_payout_limit_kes: int
    daily_limit_kes: int
    sent_today_kes: int = Field(description="Sent or on its way today (Nairobi time), before this one")


class PreparedPayout(BaseModel):
    summary: PayoutSummary
    confirmation_token: str
    expires_at: datetime
    next_step: str = NEXT_STEP


def _payload(data: PayoutIn, channel_id: uuid.UUID, key: str | None) -> dict[str, Any]:
    return {
        "phone": data.phone,
        "amount": data.amount,
        "name": data.name,
        "reference": data.reference,
        "occasion": data.occasion,
        "command": data.command.value,
        "channel_id": str(channel_id),
        "idempotency_key": key,
    }


async def prepare_payout(
    actor: Actor, data: PayoutIn, *, idempotency_key: str | None = None
) -> PreparedPayout:
    """The first step, for every caller allowed to pay out (staff the owner allowed included)."""
    return await _prepare(await with_payout_grant(actor), data, idempotency_key=idempotency_key)


@use_case(Permission.payouts_request, audit="payout.prepared")
async def _prepare(actor: Actor, data: PayoutIn, *, idempotency_key: str | None) -> PreparedPayout:
    tenant_id = actor.require_tenant()
    key = clean_key(idempotency_key)
    settings = runtime().settings
    async with unit_of_work(actor) as uow:
        session = uow.session
        channel = await payout_channels.choose(
            session, tenant_id=tenant_id, channel_id=data.channel_id, mode=actor.mode
        )
        payout_channels.ensure_can_pay_out(channel)
        tenant = ensure_active(await tenants.get(session, tenant_id))
        # The same refusals the payout itself would give, now, rather than after the person agreed.
        await check_limits(session, tenant=tenant, mode=channel.mode, amount=data.amount, settings=settings)
        limits = limits_of(tenant, settings)
        so_far = await sent_today(session, tenant_id=tenant_id, mode=channel.mode, now=utcnow())
        row, token = await confirmations.issue(
            session, actor, action=ConfirmAction.payout, payload=_payload(data, channel.id, key)
        )
        await uow.audit(
            "payout.prepared",
            target=str(row.id),
            amount=data.amount,
            phone=mask_msisdn(data.phone),
            channel=channel.name,
            mode=channel.mode.value,
        )
        return PreparedPayout(
            summary=PayoutSummary(
                phone=data.phone,
                amount=data.amount,
                name=data.name,
                reference=data.reference,
                occasion=data.occasion,
                command=data.command,
                channel_id=channel.id,
                channel_name=channel.name,
                mode=channel.mode,
                per_payout_limit_kes=limits.per_payout_kes,
                daily_limit_kes=limits.daily_kes,
                sent_today_kes=so_far,
            ),
            confirmation_token=token,
            expires_at=row.expires_at,
        )


async def confirm_payout(actor: Actor, token: str) -> PayoutOut:
    """The second step: the payout the token describes, recorded and sent like any other."""
    return await _confirm(await with_payout_grant(actor), token)


@use_case(Permission.payouts_request, audit="payout.confirmed")
async def _confirm(actor: Actor, token: str) -> PayoutOut:
    async with unit_of_work(actor, readonly=True) as uow:
        row = await confirmations.check(uow.session, actor, action=ConfirmAction.payout, token=token)
        p = dict(row.payload)
    payout = await record_payout(
        actor,
        phone=p["phone"],
        amount=int(p["amount"]),
        name=p.get("name"),
        reference=p.get("reference"),
        occasion=p.get("occasion"),
        command=PayoutCommand(p["command"]),
        channel_id=uuid.UUID(p["channel_id"]),
        idempotency_key=p.get("idempotency_key") or f"confirmation:{row.id}",
    )
    async with unit_of_work(actor) as uow:
        if not await confirmations.mark_used(uow.session, row, result_id=str(payout.id)):
            raise confirmations.ConfirmationUsed(
                f"This confirmation token was already used: it made payout {payout.id}; look it up "
                "instead of confirming again.",
                result_id=str(payout.id),
            )
        await uow.audit("payout.confirmed", target=str(payout.id), confirmation=str(row.id))
    return payout
