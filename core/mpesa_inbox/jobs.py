from __future__ import annotations

from core.db import Scope
from core.jobs.registry import job
from core.mpesa_inbox import handlers, service
from core.retry import retrying
from core.runtime import runtime, unit_of_work

__all__ = ["process_answer"]

handlers.load()


@job("mpesa.process_answer", max_retries=10, min_backoff_ms=500, max_backoff_ms=60_000)
async def process_answer(inbox_id: int) -> None:
    async def apply() -> None:
        # An answer names its request, not its business: found across tenants, as STK callbacks are.
        async with unit_of_work(scope=Scope.platform("Daraja answer")) as session:
            await service.process(session, inbox_id=inbox_id, settings=runtime().settings)

    await retrying(apply, what=f"apply Daraja answer {inbox_id}")
