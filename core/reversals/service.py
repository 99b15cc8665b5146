"""Reversals, the rules that need a session: which payment may be reversed, the owner's second factor,
sending to M-Pesa and applying its answer once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.db import utcnow
from core.errors import Conflict, InvalidInput, NotFound, TooManyRequests
from core.events import publish
from core.payments.models import CUSTOMER_SOURCES, Payment, PaymentSource, PaymentStatus
from core.reversals.events import PaymentReversed, ReversalFailed
from core.reversals.models import Reversal, ReversalStatus
from core.tenants.models import MpesaChannel, Tenant

CODE_TTL = timedelta(minutes=10)
MAX_CODE_TRIES = 5
REASON_MIN, REASON_MAX = 5, 200
# What may be reversed: money a customer sent the business (a prompt it answered or a C2B payment),
# never the business's own top-ups or its channel's KES 1 check.
REVERSIBLE_SOURCES = CUSTOMER_SOURCES | {PaymentSource.c2b}
ALREADY_REVERSED = "R000001"


def code_hash(code: str, reversal_id: uuid.UUID, settings: Settings) -> str:
    """Keyed by the server's secret and bound to this reversal: a code leaked from one is worth nothing
    for another, and the database alone cannot be used to test guesses."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"{reversal_id}:{code}".encode(), hashlib.sha256).hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


async def reversible(session: AsyncSession, payment: Payment) -> MpesaChannel:
    """The channel to reverse `payment` through, or why it cannot be reversed (409)."""
    if payment.source not in REVERSIBLE_SOURCES:
        raise Conflict(
            "Only money a customer paid the business can be reversed, not a top-up or a channel check."
        )
    if payment.status is PaymentStatus.reversed:
        raise Conflict(f"This payment ({payment.receipt}) is already reversed.")
    if payment.status is not PaymentStatus.success or not payment.receipt:
        raise Conflict(
            f"Only a received payment can be reversed: this one is {payment.status.value}, so no money "
            "came in."
        )
    busy = await session.scalar(
        select(Reversal.id).where(
            Reversal.payment_id == payment.id,
            Reversal.status.in_([ReversalStatus.pending, ReversalStatus.success]),
        )
    )
    if busy is not None:
        raise Conflict(f"A reversal of {payment.receipt} is already with M-Pesa: wait for its result.")
    channel = await session.get(MpesaChannel, payment.channel_id)
    if channel is None or not channel.initiator_name or channel.initiator_verified_at is None:
        name = channel.name if channel is not None else "its channel"
        raise Conflict(
            f"Reversals go through the channel's M-Pesa initiator, and “{name}” has no proven one yet: add "
            "its initiator name and password (Settings → Channels, or PUT /api/channels/{id}/initiator), "
            "then try again."
        )
    return channel


def check_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not REASON_MIN <= len(text) <= REASON_MAX:
        raise InvalidInput(
            "reason", f"Say why in {REASON_MIN} to {REASON_MAX} characters, e.g. “paid twice by mistake”."
        )
    return text


async def get(session: AsyncSession, *, tenant_id: uuid.UUID, reversal_id: uuid.UUID) -> Reversal:
    row = await session.scalar(
        select(Reversal).where(Reversal.id == reversal_id, Reversal.tenant_id == tenant_id)
    )
    if row is None:
        raise NotFound("No such reversal.")
    return row


def check_code(row: Reversal, code: str, settings: Settings) -> None:
    """The second factor, or why not: expired, used up, wrong (counting the try)."""
    if row.status is not ReversalStatus.unconfirmed:
        raise Conflict(f"This reversal is {row.status.value}: there is nothing to confirm.")
    if row.confirm_expires_at is None or row.confirm_expires_at <= utcnow():
        row.status = ReversalStatus.cancelled
        row.finished_at = utcnow()
        raise Conflict("The confirmation code has expired: start the reversal again for a new one.")
    if row.confirm_attempts >= MAX_CODE_TRIES:
        raise TooManyRequests("Too many wrong codes for this reversal: start it again for a new code.")
    given = "".join(code.split())
    if row.confirm_code_hash is None or not hmac.compare_digest(
        row.confirm_code_hash, code_hash(given, row.id, settings)
    ):
        row.confirm_attempts += 1
        left = MAX_CODE_TRIES - row.confirm_attempts
        raise InvalidInput(
            "code",
            f"That is not the code we sent. {left} tr{'y' if left == 1 else 'ies'} left."
            if left
            else "That is not the code we sent, and it was the last try: start the reversal again.",
        )


async def apply_result(
    session: AsyncSession,
    *,
    reversal: Reversal,
    succeeded: bool,
    result_code: str | None,
    result_desc: str,
    reversal_receipt: str | None = None,
    timed_out: bool = False,
) -> str:
    """The reversal's answer, applied once: the reversal leaves `pending` in one conditional UPDATE, so
    a second delivery finds nothing to change. Success moves the payment to `reversed` and publishes
    PaymentReversed (the book and the commission follow in this transaction)."""
    status = (
        ReversalStatus.success
        if succeeded
        else ReversalStatus.timeout
        if timed_out
        else ReversalStatus.failed
    )
    now = utcnow()
    moved = await session.execute(
        update(Reversal)
        .where(Reversal.id == reversal.id, Reversal.status == ReversalStatus.pending)
        .values(
            status=status,
            result_code=result_code,
            result_desc=result_desc[:500],
            reversal_receipt=reversal_receipt,
            finished_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount == 0:  # type: ignore[attr-defined]
        return "duplicate"
    await session.refresh(reversal)
    payment = await session.get(Payment, reversal.payment_id, with_for_update=True)
    tenant = await session.get(Tenant, reversal.tenant_id)
    assert payment is not None and tenant is not None
    if not succeeded:
        await publish(session, ReversalFailed(payment=payment, reversal=reversal, tenant=tenant))
        return "applied"
    if payment.status is not PaymentStatus.success:  # reversed through another reversal already
        return "applied"
    payment.status = PaymentStatus.reversed
    payment.result_desc = f"Reversed ({reversal_receipt or 'M-Pesa'}): {reversal.reason}"[:500]
    await publish(session, PaymentReversed(payment=payment, reversal=reversal, tenant=tenant))
    return "applied"
