"""Daraja STK callbacks: persist first (inbox), answer 200, process in a job."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.context import current_request
from core.daraja.callbacks import parse_stk_callback
from core.daraja.result_codes import classify
from core.db import utcnow
from core.errors import NotFound
from core.jobs.registry import JobSpec, enqueue
from core.payments.models import CallbackInbox, Payment, PaymentStatus
from core.payments.service import payments
from core.tenants.service import tenants

MAX_BODY = 64 * 1024
# A callback can beat our own record of the CheckoutRequestID (Daraja answered the push and called
# back before we committed). Give the payment this long to appear before calling the callback orphaned.
ORPHAN_AFTER = timedelta(minutes=2)


class CallbackNotYetMatched(Exception):
    """Retryable: the payment this callback belongs to is not recorded yet."""


class CallbackService:
    async def ingest(
        self, session: AsyncSession, *, token: str, body: bytes, remote_addr: str | None, job: JobSpec
    ) -> CallbackInbox:
        channel = await tenants.get_channel_by_token(session, token)
        if channel is None:
            raise NotFound("Unknown callback URL.")
        checkout_id: str | None = None
        try:
            data = json.loads(body)
            cid = data["Body"]["stkCallback"]["CheckoutRequestID"]
            checkout_id = str(cid)[:64] if cid is not None else None
        except Exception:  # noqa: S110 - a malformed body is still stored, and reported by the job
            pass
        req = current_request()
        row = CallbackInbox(
            channel_id=channel.id,
            checkout_request_id=checkout_id,
            # Postgres text cannot hold NUL; such a body is malformed anyway, but it is still kept.
            payload=body[:MAX_BODY].decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
            remote_addr=remote_addr,
            request_id=req.request_id if req else None,
        )
        session.add(row)
        await session.flush()
        await enqueue(session, job, inbox_id=row.id)
        return row

    async def process(self, session: AsyncSession, *, inbox_id: int, settings: Settings) -> str:
        """Apply one stored callback. Safe to run any number of times for the same row or for
        duplicates of the same callback: `payments.finalize` applies a final state once."""
        row = await session.get(CallbackInbox, inbox_id)
        if row is None or row.processed_at is not None:
            return "skipped"
        try:
            cb = parse_stk_callback(json.loads(row.payload))
        except ValueError as exc:
            return self._done(row, "malformed", str(exc))

        payment = await session.scalar(
            select(Payment).where(
                Payment.checkout_request_id == cb.checkout_request_id, Payment.channel_id == row.channel_id
            )
        )
        if payment is None and cb.result_code == "0" and cb.amount is not None and cb.phone:
            payment = await self._match_unknown_outcome(session, row, amount=cb.amount, phone=cb.phone)
            if payment is not None:
                payment.checkout_request_id = cb.checkout_request_id
                payment.merchant_request_id = cb.merchant_request_id
        if payment is None:
            if utcnow() - row.received_at < ORPHAN_AFTER:
                raise CallbackNotYetMatched(cb.checkout_request_id)
            return self._done(row, "orphan", "no payment of this channel has this CheckoutRequestID")

        status, message = classify(cb.result_code)
        flag = None
        final = PaymentStatus(status)
        if final is PaymentStatus.success:
            if cb.amount is not None and cb.amount != payment.amount:
                # Never trust a success for a different amount: record it, count nothing, flag it.
                flag = f"callback amount KES {cb.amount} differs from requested KES {payment.amount}"
                final = PaymentStatus.failed
                message = f"Flagged for review: {flag}."
            elif cb.phone and cb.phone.isdigit() and len(cb.phone) == 12 and cb.phone != payment.phone:
                # Phone numbers may be masked by Safaricom, so only a full, different number is flagged.
                flag = f"callback phone {cb.phone[:4]}****{cb.phone[-4:]} differs from the requested phone"
        outcome = await payments.finalize(
            session,
            payment=payment,
            settings=settings,
            status=final,
            result_code=cb.result_code,
            result_desc=message,
            receipt=cb.receipt if final is PaymentStatus.success else None,
            paid_amount=cb.amount,
            paid_phone=cb.phone,
            transaction_date=cb.transaction_date,
            flag=flag,
        )
        return self._done(row, "applied" if outcome.applied else "duplicate", None)

    async def _match_unknown_outcome(
        self, session: AsyncSession, row: CallbackInbox, *, amount: int, phone: str
    ) -> Payment | None:
        """A push whose Daraja answer we never got has no CheckoutRequestID; its success callback is
        matched to it by channel, phone and amount among recent unresolved pushes (only if unique)."""
        candidates = list(
            await session.scalars(
                select(Payment).where(
                    Payment.channel_id == row.channel_id,
                    Payment.status == PaymentStatus.pending,
                    Payment.checkout_request_id.is_(None),
                    Payment.phone == phone,
                    Payment.amount == amount,
                    Payment.created_at > row.received_at - timedelta(minutes=10),
                )
            )
        )
        return candidates[0] if len(candidates) == 1 else None

    @staticmethod
    def _done(row: CallbackInbox, outcome: str, error: str | None) -> str:
        row.processed_at = utcnow()
        row.outcome = outcome
        row.error = error
        return outcome


callbacks = CallbackService()
