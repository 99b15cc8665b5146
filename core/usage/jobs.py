"""The daily pruning of the API request log (scheduled in web/app.py's periodic jobs)."""

from __future__ import annotations

from datetime import timedelta

import core.usage.alerts  # noqa: F401  - its job and its hook on audit rows, in every process
from core.db import Scope, utcnow
from core.jobs.registry import job
from core.runtime import runtime, unit_of_work
from core.usage.service import usage

PRUNE = Scope.platform("usage.prune: every business's old API request log rows")
PRUNE_BATCH = 5000


@job("usage.prune", max_retries=3)
async def prune_usage() -> None:
    """Delete request log rows older than USAGE_RETENTION_DAYS, oldest first, in batches (each its
    own transaction, so the log stays writable meanwhile). The networks keys were used from are kept:
    they are what a new network is compared with."""
    cutoff = utcnow() - timedelta(days=runtime().settings.USAGE_RETENTION_DAYS)
    while True:
        async with unit_of_work(scope=PRUNE) as session:
            deleted = await usage.prune(session, before=cutoff, batch=PRUNE_BATCH)
        if deleted < PRUNE_BATCH:
            return
