"""A batch follows its payouts: each one that ends moves the batch on (core.payout_batches.jobs)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.events import subscribe
from core.jobs.registry import enqueue
from core.payout_batches.jobs import advance_batch
from core.payouts.events import PayoutFinalised


@subscribe(PayoutFinalised)
async def move_batch_on(session: AsyncSession, event: PayoutFinalised) -> None:
    p = event.payout
    if p.batch_id is not None:
        await enqueue(session, advance_batch, batch_id=str(p.batch_id), payout_id=str(p.id))
