"""/api reversals of received payments: ask (a code goes to the owner), confirm with the code (then
M-Pesa is asked), follow. core/reversals decides who may and what may be reversed."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from core.reversals import use_cases
from core.reversals.schemas import ReversalOut, ReversalStarted
from web.deps import CurrentActor

router = APIRouter(tags=["reversals"])


class ReversalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500, description="Why, 5 to 200 characters: it is audited")


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=20, description="The 6-digit code sent to the owner")


@router.post("/transactions/{payment_id}/reversal", status_code=202)
async def start_reversal(payment_id: uuid.UUID, body: ReversalIn, actor: CurrentActor) -> ReversalStarted:
    """Ask to reverse a received payment (the whole amount). Nothing goes to M-Pesa yet: a code goes to
    the owner by email (and Telegram when linked); confirm with it within 10 minutes. Owner only, or a
    key with `payouts:write`; the channel needs a proven M-Pesa initiator."""
    return await use_cases.start_reversal(actor, payment_id, reason=body.reason)


@router.post("/reversals/{reversal_id}/confirm", status_code=202)
async def confirm_reversal(reversal_id: uuid.UUID, body: ConfirmIn, actor: CurrentActor) -> ReversalOut:
    """The owner's code: the reversal goes to M-Pesa (`pending`), and the payment becomes `reversed`
    only when M-Pesa's result says so: follow it with GET /api/reversals/{id}, or the reversal.succeeded /
    reversal.failed webhooks (named on an endpoint, with payouts:read). Five wrong codes
    and it must be asked again."""
    return await use_cases.confirm_reversal(actor, reversal_id, code=body.code)


@router.get("/reversals")
async def list_reversals(actor: CurrentActor, limit: int = Query(50, ge=1, le=100)) -> list[ReversalOut]:
    return await use_cases.list_reversals(actor, limit=limit)


@router.get("/reversals/{reversal_id}")
async def get_reversal(reversal_id: uuid.UUID, actor: CurrentActor) -> ReversalOut:
    return await use_cases.get_reversal(actor, reversal_id)
