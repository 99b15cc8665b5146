from __future__ import annotations

from core.jobs.registry import job
from core.payments.callbacks import callbacks
from core.payments.reconcile import check_payment, reconcile_pending
from core.runtime import runtime, unit_of_work

__all__ = ["check_payment", "process_callback", "reconcile_pending"]


@job("payments.process_callback", max_retries=10, min_backoff_ms=500, max_backoff_ms=60_000)
async def process_callback(inbox_id: int) -> None:
    async with unit_of_work() as session:
        await callbacks.process(session, inbox_id=inbox_id, settings=runtime().settings)
