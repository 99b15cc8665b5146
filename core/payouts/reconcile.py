"""Settling payouts whose result never came: sent again while M-Pesa may not have them, then asked
about with Transaction Status (by the OriginatorConversationID they were sent with), then given up.

A payout must never stay pending forever, and must never be paid twice:

1. Not accepted yet (`sent_at` unset) and attempts left: the send job runs again, same id
   (core/payouts/send.py): Daraja answers a duplicate if an earlier attempt got through.
2. Accepted, or out of attempts: a status lookup (core.lookups) is sent, at most MAX_STATUS_CHECKS,
   spaced by `status_backoff`. Its answer (core.lookups.answers → `apply_status_answer`):
   Completed → success with the receipt; Cancelled, Declined, Expired → failed; 2032 ("no such
   transaction") → failed "M-Pesa has no such payout" only once RESULT_WINDOW has passed since the last
   POST (before that M-Pesa may simply not have it on record yet), else asked again later; pending or
   any other answer → asked again later. A QueueTimeOut asks at once (core/payouts/answers.py).
3. MAX_STATUS_CHECKS sent and none settled it: `timeout`, final. It is never sent again; the owner
   is told to check the M-Pesa statement before paying the person again.

The timings are constants, not settings: they follow Daraja's behaviour (results in seconds, queue
timeouts in minutes), not a deployment's taste, and a shorter window would trust "no such payout"
from an M-Pesa that has not finished recording it. Tests move a payout's clock back instead.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.daraja.result_codes import describe_money_out_result
from core.daraja.results import TransactionStatusResult
from core.db import Scope, narrow_scope, utcnow
from core.jobs.registry import enqueue, job
from core.lookups.models import Lookup, LookupKind
from core.lookups.service import lookups
from core.money import format_kes
from core.payouts.models import Payout, PayoutStatus
from core.payouts.send import MAX_SEND_ATTEMPTS, send_payout
from core.payouts.service import Facts, payouts, public_name
from core.retry import retrying
from core.runtime import unit_of_work
from core.tenants.models import MpesaChannel

log = logging.getLogger(__name__)

BATCH = 200
MAX_STATUS_CHECKS = 6
# "No such transaction" is trusted this long after the last POST of a payout.
RESULT_WINDOW = timedelta(minutes=10)
NOT_FOUND = "2032"
SWEEP = Scope.platform("payouts reconcile sweep")
FIND = Scope.platform("payouts.check_payout: the business of a payout")

NEVER_PROCESSED = (
    "M-Pesa has no such payout: it was never processed, so no money left the account. Send it again "
    "if it is still owed (a new payout)."
)


def status_backoff(checks: int) -> timedelta:
    """After the n-th status check: 2, 4, 8, 16, 30, 30 minutes (about an hour and a half in all)."""
    return timedelta(minutes=min(2 * 2 ** (checks - 1), 30))


def gave_up(payout: Payout) -> str:
    return (
        f"M-Pesa never said whether this payout of {format_kes(payout.amount)} was paid, and "
        f"{MAX_STATUS_CHECKS} status checks got no answer. It will not be sent again: check the M-Pesa "
        "statement for it before paying this person again."
    )


@job("payouts.reconcile_pending", max_retries=0)
async def reconcile_payouts() -> None:
    """Periodic: hand every pending payout that is due for a look to its own job."""
    now = utcnow()
    async with unit_of_work(scope=SWEEP) as session:
        ids = list(
            await session.scalars(
                select(Payout.id)
                .where(Payout.status == PayoutStatus.pending, Payout.next_check_at <= now)
                .order_by(Payout.next_check_at)
                .limit(BATCH)
            )
        )
        if ids:
            # Forward now, so the next sweep does not queue the same payouts again; the check sets
            # the real next time.
            await session.execute(
                update(Payout).where(Payout.id.in_(ids)).values(next_check_at=now + timedelta(minutes=2))
            )
        for pid in ids:
            await enqueue(session, check_payout, payout_id=str(pid))


@job("payouts.check_payout", max_retries=3)
async def check_payout(payout_id: str) -> None:
    await resolve_payout(uuid.UUID(payout_id))


async def resolve_payout(payout_id: uuid.UUID) -> PayoutStatus | None:
    """One look at a pending payout: send it again, ask M-Pesa about it, or give up (see the module).
    Returns its status after the look (a status question's answer comes later, to the inbox)."""
    return await retrying(lambda: _check(payout_id), what=f"check payout {payout_id}")


async def _check(payout_id: uuid.UUID) -> PayoutStatus | None:
    async with unit_of_work(scope=FIND) as session:
        payout = await payouts.lock(session, payout_id)
        if payout is None or payout.status is not PayoutStatus.pending:
            return payout.status if payout else None
        await narrow_scope(session, payout.tenant_id)
        now = utcnow()
        if payout.sent_at is None and payout.send_attempts < MAX_SEND_ATTEMPTS:
            payout.next_check_at = now + timedelta(minutes=2)  # the send job sets its own time
            await enqueue(session, send_payout, payout_id=str(payout.id))
            return PayoutStatus.pending
        if payout.status_checks >= MAX_STATUS_CHECKS:
            await payouts.finalize(
                session,
                payout=payout,
                status=PayoutStatus.timeout,
                result_code=None,
                result_desc=gave_up(payout),
            )
            return PayoutStatus.timeout
        channel = await session.get(MpesaChannel, payout.channel_id)
        assert channel is not None
        payout.status_checks += 1
        payout.next_check_at = now + status_backoff(payout.status_checks)
        await lookups.ask(
            session,
            channel=channel,
            kind=LookupKind.status,
            transaction_id=payout.originator_conversation_id,
            payout_id=payout.id,
        )
        return PayoutStatus.pending


async def check_soon(session: AsyncSession, payout: Payout) -> None:
    """Look at `payout` now rather than at its next scheduled time (a QueueTimeOut came)."""
    payout.next_check_at = utcnow()
    await enqueue(session, check_payout, payout_id=str(payout.id))


async def apply_status_answer(session: AsyncSession, lookup: Lookup, result: TransactionStatusResult) -> str:
    """What a Transaction Status answer about a payout means for it (see the module), in the
    transaction that records the answer on the lookup. Returns the inbox outcome."""
    assert lookup.payout_id is not None
    payout = await payouts.lock(session, lookup.payout_id)
    if payout is None:
        return "applied"
    queried = result.queried_originator_conversation_id
    if queried and queried != payout.originator_conversation_id:
        log.warning("status answer for payout %s names another transaction (%s)", payout.id, queried)
        return "rejected: another transaction"
    outcome = result.transaction_outcome
    if payout.status.is_final:
        # Already settled (its B2C result came meanwhile): the answer is kept on the lookup only.
        agrees = (outcome == "success") == (payout.status is PayoutStatus.success)
        return "applied" if outcome is None or agrees else f"conflict: payout is {payout.status.value}"
    if outcome == "success":
        if result.amount_cents is not None and result.amount_cents != payout.amount * 100:
            log.warning("status answer for payout %s: amount %s cents", payout.id, result.amount_cents)
            return "rejected: amount differs"
        await payouts.finalize(
            session,
            payout=payout,
            status=PayoutStatus.success,
            result_code="0",
            result_desc="Paid (confirmed by an M-Pesa status query)",
            facts=Facts(
                receipt=result.receipt,
                recipient_name=public_name(result.credit_party_name),
                transaction_completed_at=result.finalised_at,
            ),
        )
        return "applied"
    if outcome == "failed":
        said = (result.transaction_status or "not completed").lower()
        await payouts.finalize(
            session,
            payout=payout,
            status=PayoutStatus.failed,
            result_code=result.result_code,
            result_desc=f"M-Pesa says this payout was {said}: no money left the account.",
        )
        return "applied"
    if result.result_code == NOT_FOUND:
        last_post = payout.last_attempt_at or payout.created_at
        if lookup.created_at - last_post >= RESULT_WINDOW:
            await payouts.finalize(
                session,
                payout=payout,
                status=PayoutStatus.failed,
                result_code=NOT_FOUND,
                result_desc=NEVER_PROCESSED,
            )
            return "applied"
        return "applied: not on record yet"
    if result.result_code != "0":
        log.info(
            "status check of payout %s unanswered: %s",
            payout.id,
            describe_money_out_result(result.result_code),
        )
    return "applied: still pending"
