"""PATCH /api/staff/{user_id}/payout-grant: the owner allows a manager or cashier to pay out, or stops
them (core/auth/use_cases_payout_grant.py decides who may)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from core.auth.use_cases_payout_grant import PayoutGrantOut, set_payout_grant
from web.deps import CurrentActor

router = APIRouter(tags=["staff"])


class PayoutGrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed: bool = Field(description="true: this person may pay out; false: they may not (the default)")


@router.patch("/staff/{user_id}/payout-grant")
async def payout_grant(user_id: uuid.UUID, body: PayoutGrantIn, actor: CurrentActor) -> PayoutGrantOut:
    """Let a manager or cashier pay out (single payouts and bulk batches, within the business's
    limits), or stop them. The owner's alone (a key needs business:write and payouts:write);
    reversals stay the owner's whatever this says. The owner, a removed person and another business's
    user are 404. Setting what is already set changes nothing."""
    return await set_payout_grant(actor, user_id, allowed=body.allowed)
