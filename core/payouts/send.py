"""Sending a payout to Daraja (B2C v3), in a job after the transaction that recorded it: never in the
request that asked for it.

Each attempt is claimed first in its own transaction (the attempt counted, its time stamped, the next
look of the reconciler set), then POSTed with the payout's one OriginatorConversationID, then what
Daraja said is recorded in a second transaction:

- accepted: the ConversationID and `sent_at`; the result comes to the ResultURL (core/payouts/answers.py);
- `500.002.1001` duplicate: Daraja already has this payout from an earlier attempt whose answer we
  lost. Not a failure: it is treated as accepted, and its result or a status query settles it;
- no answer, or an answer we cannot read (outcome unknown), Daraja unreachable or throttling: sent
  again later by the reconciler with the **same** id (Daraja refuses a second payout under it), at
  most MAX_SEND_ATTEMPTS times, then left to Transaction Status queries. A new id is never minted;
- a definite refusal on the first attempt (a bad field, the app's keys, the mode guard, a missing
  certificate): failed with the reason, since nothing reached M-Pesa. On a later attempt a refusal
  proves nothing about the earlier one whose answer was lost: it is handled as an unknown outcome.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from core.daraja.app import InitiatorCredentials
from core.daraja.errors import (
    DarajaDuplicateRequestError,
    DarajaError,
    DarajaThrottleError,
    DarajaTransientError,
)
from core.daraja.money_out import B2CPaymentRequest, RequestAccepted
from core.db import Scope, narrow_scope, utcnow
from core.errors import LipapushError
from core.jobs.registry import job
from core.payouts.models import Payout, PayoutStatus
from core.payouts.service import DEFAULT_REMARKS, payouts
from core.retry import retrying
from core.runtime import runtime, unit_of_work
from core.tenants.initiators import answer_urls, initiator_credentials
from core.tenants.models import MpesaChannel

log = logging.getLogger(__name__)

# A payout's job carries only its id: whose it is, is what its first read finds out.
FIND_PAYOUT = Scope.platform("payouts.send_payout: the business of a payout")

MAX_SEND_ATTEMPTS = 5
# The pause before attempt n+1 after attempt n's outcome was unknown (30 s, 1, 2, 4 minutes: a
# gateway hiccup is usually over in seconds, an outage in minutes). Also how long the reconciler
# waits for an attempt in flight: a worker that dies mid-call is followed up after this.
RESEND_AFTER = (timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4))
# Accepted: a B2C result usually comes within seconds; after this the reconciler asks M-Pesa.
FIRST_STATUS_CHECK = timedelta(minutes=3)


def resend_after(attempt: int) -> timedelta:
    return RESEND_AFTER[min(attempt, len(RESEND_AFTER)) - 1]


@dataclass(frozen=True)
class Attempt:
    payout_id: uuid.UUID
    tenant_id: uuid.UUID
    number: int
    creds: InitiatorCredentials
    request: B2CPaymentRequest


def b2c_request(payout: Payout, channel: MpesaChannel) -> B2CPaymentRequest:
    result_url, timeout_url = answer_urls(channel, "b2c", settings=runtime().settings)
    return B2CPaymentRequest(
        originator_conversation_id=payout.originator_conversation_id,
        phone=payout.phone,
        amount=payout.amount,
        command=payout.command.value,
        occasion=payout.occasion,
        remarks=payout.reference or DEFAULT_REMARKS,
        result_url=result_url,
        timeout_url=timeout_url,
    )


async def _claim(payout_id: uuid.UUID) -> Attempt | None:
    """Count the attempt and stamp it, in the payout's row lock, before anything is sent."""
    rt = runtime()
    async with unit_of_work(scope=FIND_PAYOUT) as session:
        payout = await payouts.lock(session, payout_id)
        if (
            payout is None
            or payout.status is not PayoutStatus.pending
            or payout.sent_at is not None
            or payout.send_attempts >= MAX_SEND_ATTEMPTS
        ):
            return None
        await narrow_scope(session, payout.tenant_id)
        channel = await session.get(MpesaChannel, payout.channel_id)
        assert channel is not None
        now = utcnow()
        payout.send_attempts += 1
        payout.last_attempt_at = now
        # If this process dies mid-call, the reconciler follows up after this.
        payout.next_check_at = now + resend_after(payout.send_attempts)
        try:
            # The payout's own mode: a channel switched between test and live since it was recorded
            # is refused by the client (a test payout never reaches production).
            creds = initiator_credentials(channel, box=rt.secrets, settings=rt.settings, mode=payout.mode)
            request = b2c_request(payout, channel)
        except (LipapushError, DarajaError, ValidationError, ValueError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            await _refused(session, payout, f"Not sent to M-Pesa: {message}", None)
            return None
        return Attempt(payout.id, payout.tenant_id, payout.send_attempts, creds, request)


async def _refused(session: AsyncSession, payout: Payout, message: str, code: str | None) -> None:
    if payout.send_attempts <= 1:
        await payouts.finalize(
            session, payout=payout, status=PayoutStatus.failed, result_code=code, result_desc=message
        )
        return
    # An earlier attempt's answer was lost, so this refusal proves nothing about it: the payout is
    # handled as an unknown outcome (again later under its id, then asked about).
    log.warning("payout %s attempt %d refused: %s", payout.id, payout.send_attempts, message)
    payout.next_check_at = utcnow() + (
        resend_after(payout.send_attempts) if payout.send_attempts < MAX_SEND_ATTEMPTS else FIRST_STATUS_CHECK
    )


@job("payouts.send_payout", max_retries=0)
async def send_payout(payout_id: str) -> None:
    """One attempt at sending a payout (see the module). Safe to run any number of times: an attempt
    goes out only while the payout is pending and not yet accepted, and always under its one id."""
    attempt = await retrying(lambda: _claim(uuid.UUID(payout_id)), what=f"claim payout {payout_id}")
    if attempt is None:
        return
    outcome: RequestAccepted | DarajaError | ValueError
    try:
        outcome = await runtime().daraja().b2c_payment(attempt.creds, attempt.request)
    except (DarajaError, ValueError) as exc:
        outcome = exc
    await retrying(lambda: _record(attempt, outcome), what=f"record Daraja's answer to payout {payout_id}")


async def _record(attempt: Attempt, outcome: RequestAccepted | DarajaError | ValueError) -> None:
    async with unit_of_work(scope=Scope.tenant(attempt.tenant_id)) as session:
        payout = await payouts.lock(session, attempt.payout_id)
        if payout is None:
            return
        now = utcnow()
        if isinstance(outcome, RequestAccepted | DarajaDuplicateRequestError):
            # Daraja has it. Its result may already have made it final (it can beat this transaction).
            if isinstance(outcome, RequestAccepted) and payout.conversation_id is None:
                payout.conversation_id = outcome.conversation_id
            payout.sent_at = payout.sent_at or now
            if payout.status is PayoutStatus.pending:
                payout.next_check_at = now + FIRST_STATUS_CHECK
            return
        if payout.status is not PayoutStatus.pending or payout.sent_at is not None:
            return  # settled (or accepted by another attempt) meanwhile
        if isinstance(outcome, DarajaTransientError | DarajaThrottleError):
            # Unknown, or nothing sent: again later under the same id, or, after the last attempt,
            # asked about (the reconciler queries a payout whose attempts are used up).
            payout.next_check_at = now + (
                resend_after(attempt.number) if attempt.number < MAX_SEND_ATTEMPTS else FIRST_STATUS_CHECK
            )
            log.info("payout %s attempt %d: %s", payout.id, attempt.number, outcome.message)
            return
        message = getattr(outcome, "message", None) or str(outcome)
        code = getattr(outcome, "error_code", None)
        await _refused(session, payout, f"M-Pesa refused the payout: {message}", code)
