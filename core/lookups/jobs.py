"""The lookups' periodic job: time out questions M-Pesa never answered, and refresh each proven
initiator's balance once a day.

One job, every minute: a lookup left pending LOOKUP_ANSWER_SECONDS is `timeout` (Daraja does not
retry its results, refs §9, so a lost one never comes); a channel whose initiator is verified and whose
last balance question is a day old (or none) is asked again, so the balance the bot and the dashboard
show is at most a day old without anyone asking. Running it more often costs one query a minute;
two schedulers at once would at worst ask twice.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Scope, utcnow
from core.jobs.registry import job
from core.lookups.models import Lookup, LookupKind, LookupStatus
from core.lookups.proof import apply_balance_answer
from core.lookups.send import send_lookup
from core.lookups.service import lookups
from core.runtime import unit_of_work
from core.tenants.models import MpesaChannel

__all__ = ["send_lookup", "sweep_lookups"]

LOOKUP_ANSWER_SECONDS = 10 * 60
BALANCE_EVERY = timedelta(days=1)
BATCH = 200
SWEEP = Scope.platform("lookups sweep: unanswered lookups, daily balances")

UNANSWERED = "M-Pesa never answered this question (10 minutes): ask again."


async def expire_unanswered(session: AsyncSession) -> int:
    cutoff = utcnow() - timedelta(seconds=LOOKUP_ANSWER_SECONDS)
    rows = list(
        await session.scalars(
            select(Lookup)
            .where(Lookup.status == LookupStatus.pending, Lookup.created_at < cutoff)
            .order_by(Lookup.created_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    )
    for lookup in rows:
        lookups.record_answer(lookup, status=LookupStatus.timeout, result_code=None, result_desc=UNANSWERED)
        if lookup.kind is LookupKind.balance:
            await apply_balance_answer(
                session,
                lookup,
                ok=False,
                code=None,
                message="M-Pesa never answered the balance check that proves this initiator: set it again "
                "to retry.",
            )
    return len(rows)


async def refresh_daily(session: AsyncSession) -> int:
    since = utcnow() - BALANCE_EVERY
    last = (
        select(Lookup.channel_id, func.max(Lookup.created_at).label("at"))
        .where(Lookup.kind == LookupKind.balance)
        .group_by(Lookup.channel_id)
        .subquery()
    )
    due = list(
        await session.scalars(
            select(MpesaChannel)
            .outerjoin(last, last.c.channel_id == MpesaChannel.id)
            .where(
                MpesaChannel.initiator_verified_at.is_not(None),
                (last.c.at.is_(None)) | (last.c.at < since),
            )
            .limit(BATCH)
        )
    )
    for channel in due:
        await lookups.ask(session, channel=channel, kind=LookupKind.balance)
    return len(due)


@job("lookups.sweep", max_retries=0)
async def sweep_lookups() -> None:
    """Periodic (every minute): see the module."""
    async with unit_of_work(scope=SWEEP) as session:
        await expire_unanswered(session)
        await refresh_daily(session)
