"""/api/balance and /api/lookups: asking M-Pesa the business's balance and a transaction's status
(core/lookups/use_cases.py decides who may). Answers come later: the ask returns 202 and the lookup."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from core.lookups import use_cases
from core.lookups.schemas import BalanceRefreshIn, BalancesOut, LookupOut, LookupsOut, StatusLookupIn
from web.deps import CurrentActor

router = APIRouter(tags=["lookups"])


@router.get("/balance")
async def get_balance(actor: CurrentActor) -> BalancesOut:
    """The latest M-Pesa balance of each channel with an initiator, with when M-Pesa gave it
    (refreshed daily, and by POST /api/balance/refresh). Needs payouts:read."""
    return await use_cases.balances(actor)


@router.post("/balance/refresh", status_code=202)
async def refresh_balance(actor: CurrentActor, body: BalanceRefreshIn | None = None) -> LookupsOut:
    """Ask M-Pesa for a fresh balance (of one channel, or every channel with an initiator). The
    answer shows in GET /api/balance within seconds."""
    channel_id = body.channel_id if body is not None else None
    return LookupsOut(lookups=await use_cases.refresh_balance(actor, channel_id=channel_id))


@router.post("/lookups/status", status_code=202)
async def lookup_status(body: StatusLookupIn, actor: CurrentActor) -> LookupOut:
    """Ask M-Pesa how a transaction ended, by its receipt or a payment's. The answer is stored on the
    lookup (GET /api/lookups/{id}); a payment's own state is never changed by it. Needs
    payments:write."""
    return await use_cases.lookup_status(
        actor, receipt=body.receipt, payment_id=body.payment_id, channel_id=body.channel_id
    )


@router.get("/lookups/{lookup_id}")
async def get_lookup(lookup_id: uuid.UUID, actor: CurrentActor) -> LookupOut:
    """One lookup and, once it came, M-Pesa's answer."""
    return await use_cases.get_lookup(actor, lookup_id)
