"""Resolving payments whose callback never came: STK Query with backoff, then expiry.

A payment must never stay pending forever: after EXPIRE_AFTER_SECONDS it becomes `expired`. A query
only ever moves a *pending* payment (payments.finalize), so it can never downgrade a success that a
callback already confirmed (the sandbox is known to answer FAILED for paid pushes, refs §5). A query
settles a success without its receipt; the delayed callback adds it later (`payments.add_facts`).

A push whose CheckoutRequestID was never saved (the process died, or Daraja's answer timed out) cannot
be queried: only its callback can settle it, matched by amount and phone (core.payments.callbacks). It
keeps the full EXPIRE_AFTER_SECONDS all the same: a success that comes before is adopted and counted,
one that comes after only flags the expired payment.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update

from core.daraja.errors import DarajaBusinessError, DarajaError, DarajaModeError
from core.daraja.result_codes import classify
from core.daraja.schemas import StkQueryResult
from core.db import Scope, utcnow
from core.jobs.registry import enqueue, job
from core.payments.models import Payment, PaymentStatus
from core.payments.service import payments
from core.retry import retrying
from core.runtime import runtime, unit_of_work
from core.tenants.models import Mode, MpesaChannel
from core.tenants.service import tenants

log = logging.getLogger(__name__)

BATCH = 200
# One payment by its id: a top-up pays through the platform's channel, another tenant's row.
STK_QUERY = Scope.platform("STK query of a pending payment")


def backoff(attempts: int) -> timedelta:
    """30 s, 60 s, 120 s, then every 4 minutes."""
    return timedelta(seconds=min(30 * 2**attempts, 240))


@job("payments.reconcile_pending", max_retries=0)
async def reconcile_pending() -> None:
    """Periodic: hand every pending payment that is due for a check to its own job."""
    now = utcnow()
    async with unit_of_work(scope=Scope.platform("reconcile sweep")) as session:
        ids = list(
            await session.scalars(
                select(Payment.id)
                .where(Payment.status == PaymentStatus.pending, Payment.next_check_at <= now)
                .order_by(Payment.next_check_at)
                .limit(BATCH)
            )
        )
        if ids:
            # Push next_check_at forward now so the next sweep does not queue the same payments again.
            await session.execute(
                update(Payment).where(Payment.id.in_(ids)).values(next_check_at=now + timedelta(minutes=2))
            )
        for pid in ids:
            await enqueue(session, check_payment, payment_id=str(pid))


@job("payments.check_payment", max_retries=3)
async def check_payment(payment_id: str) -> None:
    await resolve_payment(uuid.UUID(payment_id))


async def resolve_payment(payment_id: uuid.UUID) -> PaymentStatus | None:
    rt = runtime()
    expire_after = timedelta(seconds=rt.settings.EXPIRE_AFTER_SECONDS)
    async with unit_of_work(readonly=True, scope=STK_QUERY) as session:
        payment = await session.get(Payment, payment_id)
        if payment is None or payment.status.is_final:
            return payment.status if payment else None
        channel = await session.get(MpesaChannel, payment.channel_id)
        assert channel is not None
        # The payment's own mode: if the channel switched between test and live since, the client
        # refuses the query (a test payment's never reaches production, a live one's never the
        # sandbox) and the payment waits for its callback or expires, on the usual backoff.
        creds = tenants.credentials(channel, box=rt.secrets, settings=rt.settings, mode=payment.mode)
        checkout_id, attempts, created_at = (
            payment.checkout_request_id,
            payment.query_attempts,
            payment.created_at,
        )

    result = None
    if checkout_id is not None:
        try:
            result = await rt.daraja().stk_query(creds, checkout_id)
        except DarajaBusinessError as exc:
            log.info("stk query for %s refused: %s", payment_id, exc.message)
        except DarajaModeError as exc:
            log.info("stk query for %s not sent (the channel changed mode?): %s", payment_id, exc.message)
        except DarajaError as exc:
            log.warning("stk query for %s failed (%s); will retry", payment_id, exc.kind)

    return await retrying(
        lambda: _settle(payment_id, result, attempts, created_at, expire_after),
        what=f"settle payment {payment_id}",
    )


async def _settle(
    payment_id: uuid.UUID,
    result: StkQueryResult | None,
    attempts: int,
    created_at: datetime,
    expire_after: timedelta,
) -> PaymentStatus | None:
    """What the status query said (or the clock), applied in one transaction that touches only the
    database, so `resolve_payment` may run it again when Postgres aborts it as a deadlock victim."""
    rt = runtime()
    async with unit_of_work(scope=STK_QUERY) as session:
        payment = await session.get(Payment, payment_id)
        if payment is None or payment.status.is_final:
            return payment.status if payment else None
        if result is not None and not result.pending and result.result_code is not None:
            status, message = classify(result.result_code)
            done = await payments.finalize(
                session,
                payment=payment,
                settings=rt.settings,
                status=PaymentStatus(status),
                result_code=result.result_code,
                result_desc=message if status != "success" else "Paid (confirmed by M-Pesa status query)",
            )
            return done.status
        if utcnow() - created_at >= expire_after:
            channel = await session.get(MpesaChannel, payment.channel_id)
            moved = channel is not None and channel.mode is not payment.mode
            done = await payments.finalize(
                session,
                payment=payment,
                settings=rt.settings,
                status=PaymentStatus.expired,
                result_code=None,
                result_desc=_expired_because(payment, channel_moved=moved),
            )
            return done.status
        payment.query_attempts = attempts + 1
        payment.next_check_at = min(utcnow() + backoff(attempts), created_at + expire_after)
        return PaymentStatus.pending


def _expired_because(payment: Payment, *, channel_moved: bool = False) -> str:
    """What the merchant reads on a payment that expired: why nothing could settle it.
    `channel_moved`: the channel is of the other mode now, so its status could not be queried."""
    if payment.checkout_request_id is not None and channel_moved:
        now = "live" if payment.mode is Mode.test else "test"
        tail = (
            "If the customer was charged, the receipt will show in your M-Pesa statement."
            if payment.mode is Mode.live
            else "It was a test payment: no money moved."
        )
        return (
            f"This business's M-Pesa channel changed from {payment.mode.value} to {now} after this "
            f"{payment.mode.value} payment was sent, so its status could not be checked with M-Pesa, "
            f"and no final answer came in time: it expired. {tail}"
        )
    if payment.checkout_request_id is not None:
        return (
            "M-Pesa gave no final answer in time, so this request expired. "
            "If the customer was charged, the receipt will show in your M-Pesa statement."
        )
    if payment.pushed_at is None:
        return "This request was never sent to M-Pesa, so nobody was asked to pay, and it expired."
    # Pushed, but Daraja's answer (the CheckoutRequestID a status query needs) never reached the
    # database. Only the callback can still tell, and core.payments.callbacks matches it by amount and
    # phone: to this payment while pending (adopted), after expiry only as a flag on it.
    return (
        "The request to M-Pesa was interrupted before its answer was saved, so its result could not be "
        "checked and it expired. If the customer was charged, M-Pesa's report will be matched to this "
        "payment and flagged here; you can also check your M-Pesa statement."
    )
