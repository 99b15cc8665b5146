from __future__ import annotations

from core.db import Scope
from core.jobs.registry import job
from core.payments.callbacks import callbacks
from core.payments.reconcile import check_payment, reconcile_pending
from core.retry import retrying
from core.runtime import runtime, unit_of_work

__all__ = ["check_payment", "process_callback", "reconcile_pending"]


@job("payments.process_callback", max_retries=10, min_backoff_ms=500, max_backoff_ms=60_000)
async def process_callback(inbox_id: int) -> None:
    async def apply() -> None:
        # The callback names its payment, not its business: found across tenants.
        async with unit_of_work(scope=Scope.platform("Daraja callback")) as session:
            await callbacks.process(session, inbox_id=inbox_id, settings=runtime().settings)

    # Applying a callback only touches the database, so a deadlock victim runs again at once rather
    # than waiting for the job's own backoff.
    await retrying(apply, what=f"apply callback {inbox_id}")
