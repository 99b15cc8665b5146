"""The daily pruning of spent and expired confirmation tokens (scheduled in web/app.py)."""

from __future__ import annotations

from core.confirmations.service import prune
from core.db import Scope
from core.jobs.registry import job
from core.runtime import unit_of_work

PRUNE = Scope.platform("confirmations.prune: every business's tokens expired over a week ago")


@job("confirmations.prune", max_retries=3)
async def prune_confirmations() -> None:
    async with unit_of_work(scope=PRUNE) as session:
        await prune(session)
