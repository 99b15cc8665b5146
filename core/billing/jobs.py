from __future__ import annotations

from core.billing.invoices import invoices
from core.db import utcnow
from core.jobs.registry import job
from core.runtime import runtime, unit_of_work


@job("billing.issue_invoices", max_retries=3)
async def issue_invoices() -> None:
    async with unit_of_work() as session:
        await invoices.issue_all(session, now=utcnow(), settings=runtime().settings)


@job("billing.enforce_overdue", max_retries=3)
async def enforce_overdue() -> None:
    async with unit_of_work() as session:
        await invoices.enforce_overdue(session, now=utcnow(), settings=runtime().settings)
