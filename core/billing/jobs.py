from __future__ import annotations

from core.billing.invoices import invoices
from core.db import Scope, utcnow
from core.jobs.registry import job
from core.runtime import runtime, unit_of_work

# Both sweep every business: invoices are issued and holds decided for all of them in one run.
ISSUE_SCOPE = Scope.platform("billing.issue_invoices: every business's accruals")
OVERDUE_SCOPE = Scope.platform("billing.enforce_overdue: every business's invoices")


@job("billing.issue_invoices", max_retries=3)
async def issue_invoices() -> None:
    async with unit_of_work(scope=ISSUE_SCOPE) as session:
        await invoices.issue_all(session, now=utcnow(), settings=runtime().settings)


@job("billing.enforce_overdue", max_retries=3)
async def enforce_overdue() -> None:
    async with unit_of_work(scope=OVERDUE_SCOPE) as session:
        await invoices.enforce_overdue(session, now=utcnow(), settings=runtime().settings)
