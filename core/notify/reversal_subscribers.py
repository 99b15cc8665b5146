"""The owner hears how a reversal ended (Telegram, else SMS): it moved money, or it did not."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.events import subscribe
from core.money import format_kes
from core.notify.service import notify
from core.reversals.events import PaymentReversed, ReversalFailed


@subscribe(PaymentReversed)
async def tell_reversed(session: AsyncSession, event: PaymentReversed) -> None:
    r = event.reversal
    await notify.to_owner(
        session,
        tenant=event.tenant,
        kind="reversal.succeeded",
        body=f"↩️ Reversed: {format_kes(r.amount)} ({r.receipt}) went back to the payer. Reason: {r.reason}",
    )


@subscribe(ReversalFailed)
async def tell_failed(session: AsyncSession, event: ReversalFailed) -> None:
    r = event.reversal
    await notify.to_owner(
        session,
        tenant=event.tenant,
        kind="reversal.failed",
        body=f"⚠️ The reversal of {format_kes(r.amount)} ({r.receipt}) did not go through: {r.result_desc}",
    )
