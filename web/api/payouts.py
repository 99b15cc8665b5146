"""/api/payouts, /api/payout-channels and /api/channels/{id}/initiator: money out (core.payouts and
core/tenants/use_cases_initiators.py decide who may)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query

from core.payouts import use_cases
from core.payouts.models import PayoutStatus
from core.payouts.schemas import PayoutFilter, PayoutIn, PayoutOut, PayoutPage
from core.tenants import use_cases_initiators as initiators
from core.tenants.initiator_schemas import InitiatorIn, InitiatorOut, PayoutChannelIn, PayoutChannelOut
from core.tenants.models import Mode
from web.deps import CurrentActor

router = APIRouter(tags=["payouts"])


@router.post("/payouts", status_code=201)
async def send_payout(
    body: PayoutIn,
    actor: CurrentActor,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", json_schema_extra={"minLength": 1, "maxLength": 255}),
    ] = None,
) -> PayoutOut:
    """Pay money out to an M-Pesa phone (B2C). This POST is the confirmation: show your own "Send KES …
    to …?" screen before calling it. Answers 201 with the payout `pending` at once; M-Pesa's result
    comes later: poll GET /api/payouts/{id} or subscribe to the payout.succeeded / payout.failed
    webhooks. Repeat with the same Idempotency-Key to retry safely: the first payout comes back, never a
    second one (another phone, amount or command under the same key is 409).

    Needs the payouts:write scope (the owner, or staff the owner allowed). Refused with nothing written:
    over the business's per-payout limit (422 `payout_over_limit`), over today's limit (429
    `payout_daily_limit`, Retry-After until midnight in Nairobi), a channel whose initiator is not
    verified (409 `initiator_not_verified`), a key of the other mode (409 `mode_mismatch`)."""
    return await use_cases.request_payout(
        actor,
        phone=body.phone,
        amount=body.amount,
        name=body.name,
        reference=body.reference,
        occasion=body.occasion,
        command=body.command,
        channel_id=body.channel_id,
        idempotency_key=idempotency_key,
    )


@router.get("/payouts")
async def list_payouts(
    actor: CurrentActor,
    status: PayoutStatus | None = None,
    channel_id: Annotated[
        uuid.UUID | None, Query(description="Only payouts through this channel; another business's is 404")
    ] = None,
    mode: Annotated[
        Mode | None, Query(description="test or live only; an API key always sees its own mode's alone")
    ] = None,
    batch_id: uuid.UUID | None = None,
    phone: Annotated[str | None, Query(max_length=20, description="phone fragment")] = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> PayoutPage:
    """The business's payouts, newest first; `next_cursor` fetches the next page."""
    filters = PayoutFilter(
        status=status,
        channel_id=channel_id,
        mode=mode,
        batch_id=batch_id,
        phone=phone,
        created_from=created_from,
        created_to=created_to,
    )
    return await use_cases.list_payouts(actor, filters=filters, cursor=cursor, limit=limit)


@router.get("/payouts/{payout_id}")
async def get_payout(payout_id: uuid.UUID, actor: CurrentActor) -> PayoutOut:
    return await use_cases.get_payout(actor, payout_id)


@router.put("/channels/{channel_id}/initiator")
async def set_initiator(channel_id: uuid.UUID, body: InitiatorIn, actor: CurrentActor) -> InitiatorOut:
    """Set the channel's Daraja initiator (the API operator of its short code): the password is
    encrypted and never shown again. A balance check is sent to prove it: `verification` is pending
    until it answers, then verified, or failed with `initiator_error` saying why. Setting it again
    (a new password every 90 days) forgets the earlier proof until the new one is proven."""
    return (await initiators.set_initiator(actor, channel_id, body)).initiator


@router.post("/payout-channels", status_code=201)
async def add_payout_channel(body: PayoutChannelIn, actor: CurrentActor) -> PayoutChannelOut:
    """Add a B2C (bulk payment) short code with its Daraja app and initiator, proven by a balance
    check like any initiator. simulator and sandbox are test mode, production is live."""
    return await initiators.add_payout_channel(actor, body)


@router.get("/payout-channels")
async def list_payout_channels(actor: CurrentActor) -> list[PayoutChannelOut]:
    """The channels payouts can go through (B2C short codes, then channels with an initiator)."""
    return await initiators.list_payout_channels(actor)
