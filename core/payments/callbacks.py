"""Daraja STK callbacks: persist first (inbox), answer 200, process in a job."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.config import Settings
from core.context import current_request
from core.daraja.callbacks import ImplausibleCallback, parse_stk_callback
from core.daraja.result_codes import classify
from core.daraja.schemas import StkCallback
from core.db import utcnow
from core.errors import NotFound
from core.jobs.registry import JobSpec, enqueue
from core.money import MPESA_MAX_AMOUNT
from core.payments.models import CallbackInbox, Payment, PaymentStatus
from core.payments.service import payments
from core.phones import mask_msisdn
from core.tenants.service import tenants
from core.text import has_unstorable, shown, strings_in

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
# A callback can beat our own record of the CheckoutRequestID (Daraja answered the push and called
# back before we committed). Give the payment this long to appear before calling the callback orphaned.
ORPHAN_AFTER = timedelta(minutes=2)
# A success callback whose CheckoutRequestID we never saved is matched to a push made at most this many
# EXPIRE_AFTER_SECONDS before it came: a pending push is never older than one; the second lets a
# callback that comes after its push expired still flag it (late_success_after_final).
ADOPT_WITHIN_EXPIRIES = 2
# A masked PhoneNumber must show at least this many last digits to pick out a customer.
MIN_VISIBLE_LAST_DIGITS = 3


# Built once: an `aliased(Payment)` made per callback had its columns adapted again each time, 12 % of
# the worker's CPU (py-spy, bench/callback_ingest.py). Values travel as bind parameters.
_OTHER_PAYMENT = aliased(Payment, name="other_payment")
_NAMED_WITH_RECEIPT_OWNER = select(
    Payment,
    select(_OTHER_PAYMENT.id)
    .where(_OTHER_PAYMENT.receipt == bindparam("receipt"), _OTHER_PAYMENT.id != Payment.id)
    .limit(1)
    .scalar_subquery(),
).where(Payment.checkout_request_id == bindparam("checkout"), Payment.channel_id == bindparam("channel"))


class CallbackNotYetMatched(Exception):
    """Retryable: the payment this callback belongs to is not recorded yet."""


class CallbackService:
    async def ingest(
        self,
        session: AsyncSession,
        *,
        token: str,
        body: bytes,
        remote_addr: str | None,
        job: JobSpec,
        channel_id: uuid.UUID | None = None,
    ) -> CallbackInbox:
        """Store the callback and enqueue its processing. `channel_id`: the channel the caller already
        found by `token` (the web route looks it up before reading the body)."""
        if channel_id is None:
            channel_id = await tenants.channel_id_by_token(session, token)
        if channel_id is None:
            raise NotFound("Unknown callback URL.")
        checkout_id: str | None = None
        unreadable = None
        if b"\x00" in body:
            unreadable = "callback body holds a NUL byte, which no database can store"
        try:
            data = json.loads(body)
            unreadable = unreadable or _unstorable_field(data)
            cid = data["Body"]["stkCallback"]["CheckoutRequestID"]
            checkout_id = str(cid)[:64] if cid is not None and unreadable is None else None
        except Exception:  # noqa: S110 - a malformed body is still stored, and reported by the job
            pass
        req = current_request()
        row = CallbackInbox(
            channel_id=channel_id,
            checkout_request_id=checkout_id,
            # Postgres text cannot hold NUL; such a body is rejected below, but it is still kept.
            payload=body[:MAX_BODY].decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
            remote_addr=remote_addr,
            request_id=req.request_id if req else None,
        )
        session.add(row)
        await session.flush()
        if unreadable is not None:
            # Rejected now, with no job: its text would fail any query or column it reached, and the
            # stored copy (NUL replaced) no longer says what came.
            self._reject(row, unreadable)
            return row
        await enqueue(session, job, inbox_id=row.id)
        return row

    async def process(self, session: AsyncSession, *, inbox_id: int, settings: Settings) -> str:
        """Apply one stored callback. Safe to run any number of times for the same row or for
        duplicates of the same callback: `payments.finalize` applies a final state once.

        Outcomes: applied (it made the payment final), enriched (it added facts such as the receipt to a
        payment already final, typically settled by the status query first), duplicate (nothing new),
        conflict (it contradicts a stored fact: nothing applied), late_success_after_final (a success
        for a payment the status query or expiry had already closed unpaid: it stays closed, flagged),
        rejected (a value that cannot be true: nothing applied), malformed, orphan, adopted (a success
        that named no payment we knew, matched by amount and phone to the one push whose Daraja answer
        was never saved, and applied to it). Only "not matched yet" raises, to be retried (for
        ORPHAN_AFTER); a callback that cannot be applied is recorded once, never retried."""
        row = await session.get(CallbackInbox, inbox_id)
        if row is None or row.processed_at is not None:
            return "skipped"
        try:
            data = json.loads(row.payload)
            cb = parse_stk_callback(data)
        except ImplausibleCallback as exc:
            return self._reject(row, str(exc))
        except ValueError as exc:
            return self._done(row, "malformed", str(exc))
        unreadable = _unstorable_field(data)
        if unreadable is not None:
            return self._reject(row, unreadable)
        if row.checkout_request_id is None:
            row.checkout_request_id = cb.checkout_request_id[:64]
        problem = self._implausible(cb)
        if problem is not None:
            return self._reject(row, problem)

        # The usual case, a callback naming its payment, reads the payment and its receipt's owner in
        # one round trip; the rest (adoption, orphans) as before.
        payment, receipt_owner = await self._named_with_receipt_owner(session, row, cb)
        if payment is not None:
            if receipt_owner is not None:
                return self._reject(row, f"receipt {cb.receipt} already belongs to another payment")
            return await self._apply(session, row, payment, cb, settings)
        found = await self._unanswered_push(session, row, cb, settings)
        if isinstance(found, Payment):
            return await self._adopt(session, row, found, cb, settings)
        # A concurrent delivery of this callback may have adopted the push while we waited for its
        # row lock: the push has this CheckoutRequestID now (and this delivery is a duplicate).
        payment = await self._named(session, row, cb)
        if payment is None:
            if utcnow() - row.received_at < ORPHAN_AFTER:
                raise CallbackNotYetMatched(cb.checkout_request_id)
            return self._done(row, "orphan", found)
        if (taken := await self._receipt_taken(session, row, payment, cb)) is not None:
            return taken
        return await self._apply(session, row, payment, cb, settings)

    async def _adopt(
        self, session: AsyncSession, row: CallbackInbox, push: Payment, cb: StkCallback, settings: Settings
    ) -> str:
        """A success for the push whose CheckoutRequestID was never saved: the push takes the callback's
        id, then the callback applies as any other (finalize: customer book, commission, messages and
        voucher once), or flags the push if expiry already closed it."""
        if (taken := await self._receipt_taken(session, row, push, cb)) is not None:
            return taken
        if await payments.adopt_checkout_id(
            session,
            payment=push,
            checkout_request_id=cb.checkout_request_id,
            merchant_request_id=cb.merchant_request_id,
        ):
            if push.status.is_final:
                return await self._late_success(session, row, push, cb, adopted=True)
            return await self._apply(session, row, push, cb, settings, adopted=True)
        # Another payment holds this CheckoutRequestID: its own answer from M-Pesa was saved after we
        # looked, so the callback is that payment's, not this push's.
        owner = await self._named(session, row, cb)
        if owner is None:
            raise CallbackNotYetMatched(cb.checkout_request_id)
        if (taken := await self._receipt_taken(session, row, owner, cb)) is not None:
            return taken
        return await self._apply(session, row, owner, cb, settings)

    async def _named(self, session: AsyncSession, row: CallbackInbox, cb: StkCallback) -> Payment | None:
        """The payment of this callback's channel that has its CheckoutRequestID."""
        return await session.scalar(
            select(Payment).where(
                Payment.checkout_request_id == cb.checkout_request_id, Payment.channel_id == row.channel_id
            )
        )

    async def _named_with_receipt_owner(
        self, session: AsyncSession, row: CallbackInbox, cb: StkCallback
    ) -> tuple[Payment | None, uuid.UUID | None]:
        """`_named`, and in the same round trip what `_receipt_taken` asks: another payment that holds
        this callback's receipt (None when the callback has no receipt or nobody else holds it)."""
        if cb.receipt is None:
            return await self._named(session, row, cb), None
        found = (
            await session.execute(
                _NAMED_WITH_RECEIPT_OWNER,
                {"checkout": cb.checkout_request_id, "channel": row.channel_id, "receipt": cb.receipt},
            )
        ).first()
        return (found[0], found[1]) if found is not None else (None, None)

    async def _receipt_taken(
        self, session: AsyncSession, row: CallbackInbox, payment: Payment, cb: StkCallback
    ) -> str | None:
        """Rejects the callback (and says so) when its receipt already belongs to another payment."""
        if cb.receipt is None:
            return None
        other = await session.scalar(
            select(Payment.id).where(Payment.receipt == cb.receipt, Payment.id != payment.id).limit(1)
        )
        if other is None:
            return None
        return self._reject(row, f"receipt {cb.receipt} already belongs to another payment")

    async def _apply(
        self,
        session: AsyncSession,
        row: CallbackInbox,
        payment: Payment,
        cb: StkCallback,
        settings: Settings,
        *,
        adopted: bool = False,
    ) -> str:
        """The callback's result on its payment: final once, then only facts added (see `process`)."""
        status, message = classify(cb.result_code)
        flag = None
        final = PaymentStatus(status)
        amount_differs = False
        if final is PaymentStatus.success:
            if cb.amount is not None and cb.amount != payment.amount:
                # Never trust a success for a different amount: record it, count nothing, flag it.
                amount_differs = True
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
        if outcome.applied and adopted:
            log.warning(
                "callback %s adopted by payment %s, whose CheckoutRequestID was lost", row.id, payment.id
            )
            return self._done(
                row,
                "adopted",
                f"payment {payment.id}: its CheckoutRequestID had not been saved, so this callback was "
                f"matched to it by amount (KES {payment.amount}) and phone",
            )
        if outcome.applied:
            return self._done(row, "applied", None)
        if cb.result_code != "0":
            return self._done(row, "duplicate", None)
        if payment.status is PaymentStatus.success:
            if amount_differs:
                return self._conflict(row, payment, flag or "")
            return await self._add_facts(session, row, payment, cb, flag)
        return await self._late_success(session, row, payment, cb)

    async def _add_facts(
        self, session: AsyncSession, row: CallbackInbox, payment: Payment, cb: StkCallback, flag: str | None
    ) -> str:
        """A success callback for a payment already paid: store what it knows that we do not."""
        added = await payments.add_facts(
            session,
            payment=payment,
            receipt=cb.receipt,
            transaction_date=cb.transaction_date,
            paid_phone=cb.phone,
            paid_amount=cb.amount,
            flag=flag,
        )
        if added.conflicts:
            return self._conflict(row, payment, "; ".join(added.conflicts))
        if not added.added:
            return self._done(row, "duplicate", None)
        log.info("callback %s added %s to payment %s", row.id, ", ".join(added.added), payment.id)
        return self._done(row, "enriched", f"added {', '.join(added.added)}")

    async def _late_success(
        self,
        session: AsyncSession,
        row: CallbackInbox,
        payment: Payment,
        cb: StkCallback,
        *,
        adopted: bool = False,
    ) -> str:
        """A success for a payment already closed unpaid. If a callback closed it, this one contradicts
        Daraja's own word: a plain duplicate (a replay or a forgery). If the status query or expiry closed
        it, the customer may well have paid late: the payment stays as it is (final states never change,
        and nothing is counted), but it is flagged so that the merchant checks the statement."""
        closed_by_callback = await session.scalar(
            select(CallbackInbox.id)
            .where(
                CallbackInbox.channel_id == row.channel_id,
                CallbackInbox.checkout_request_id == payment.checkout_request_id,
                CallbackInbox.outcome == "applied",
                CallbackInbox.id != row.id,
            )
            .limit(1)
        )
        if closed_by_callback is not None:
            return self._done(row, "duplicate", None)
        paid = f"KES {cb.amount}" if cb.amount is not None else "a payment"
        receipt = f" (receipt {cb.receipt})" if cb.receipt else ""
        note = (
            f"M-Pesa reported {paid}{receipt} as paid after this request was marked {payment.status.value}: "
            "check your M-Pesa statement before asking the customer to pay again"
        )
        await payments.add_facts(session, payment=payment, flag=note)
        log.warning(
            "callback %s reports a success for payment %s, already %s: flagged, not applied",
            row.id,
            payment.id,
            payment.status.value,
        )
        if adopted:
            # The callback named no payment we knew: say which one it was matched to.
            return self._done(
                row,
                "late_success_after_final",
                f"payment {payment.id} (matched by amount and phone: its CheckoutRequestID had not been "
                f"saved): {note}",
            )
        return self._done(row, "late_success_after_final", note)

    @staticmethod
    def _implausible(cb: StkCallback) -> str | None:
        """What in a readable callback cannot be true, whatever payment it names (None if nothing)."""
        if cb.amount is not None and not 1 <= cb.amount <= MPESA_MAX_AMOUNT:
            return f"callback amount KES {cb.amount} is outside what M-Pesa can pay (1 to {MPESA_MAX_AMOUNT})"
        if cb.receipt is not None and not (
            cb.receipt.isascii() and cb.receipt.isalnum() and len(cb.receipt) <= 20
        ):
            return f"callback receipt {cb.receipt[:40]!r} is not an M-Pesa receipt number"
        if cb.phone is not None and len(cb.phone) > 20:
            return f"callback phone {cb.phone[:40]!r} is not a phone number"
        if len(cb.result_code) > 32 or len(cb.merchant_request_id) > 64:
            return "callback ResultCode or MerchantRequestID is longer than Daraja ever sends"
        return None

    def _reject(self, row: CallbackInbox, reason: str) -> str:
        log.warning("callback %s rejected: %s", row.id, reason)
        return self._done(row, "rejected", reason)

    def _conflict(self, row: CallbackInbox, payment: Payment, reason: str) -> str:
        log.warning("callback %s contradicts payment %s, not applied: %s", row.id, payment.id, reason)
        return self._done(row, "conflict", reason)

    async def _unanswered_push(
        self, session: AsyncSession, row: CallbackInbox, cb: StkCallback, settings: Settings
    ) -> Payment | str:
        """The push a success callback belongs to when its CheckoutRequestID was never saved (the
        process died, or Daraja's answer timed out, after Daraja had accepted the push): the one
        payment of this channel sent to Daraja without an id, for the same amount and phone, made
        shortly before the callback came. Still pending, it is adopted; already expired (nothing could
        be queried without the id), it is flagged. Otherwise a sentence saying why there is none.

        The rows are locked in id order, FOR UPDATE: never SKIP LOCKED, because a concurrent delivery
        of the same callback must wait for the first, then find the push taken (its CheckoutRequestID
        set) and end a duplicate, instead of skipping to another candidate or calling this one unique."""
        unmatched = "no payment of this channel has this CheckoutRequestID"
        if cb.result_code != "0" or cb.amount is None or not cb.phone:
            return unmatched
        phone = _phone_matches(cb.phone)
        if phone is None:
            return f"{unmatched}, and its phone number {cb.phone[:20]!r} shows too little to match a push"
        window = timedelta(seconds=settings.EXPIRE_AFTER_SECONDS) * ADOPT_WITHIN_EXPIRIES
        found = list(
            await session.scalars(
                select(Payment)
                .where(
                    Payment.channel_id == row.channel_id,
                    Payment.checkout_request_id.is_(None),
                    # Sent to Daraja (a deferred push whose job never ran prompted nobody), and closed by
                    # nothing but the clock: a push Daraja refused is `failed` and never calls back.
                    Payment.pushed_at.is_not(None),
                    Payment.status.in_((PaymentStatus.pending, PaymentStatus.expired)),
                    Payment.amount == cb.amount,
                    phone,
                    Payment.created_at >= row.received_at - window,
                    # A push made after the callback came cannot be the one it answers.
                    Payment.created_at <= row.received_at,
                )
                .order_by(Payment.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
        if len(found) == 1:
            return found[0]
        what = f"KES {cb.amount} from {_shown_phone(cb.phone)}"
        if not found:
            return f"{unmatched}, and no push without one matches {what}"
        statuses = {p.status for p in found}
        kinds = " or ".join(s.value for s in (PaymentStatus.pending, PaymentStatus.expired) if s in statuses)
        return (
            f"ambiguous: {len(found)} {kinds} payments match {what} without a CheckoutRequestID, so none "
            "was chosen: check them against your M-Pesa statement"
        )

    @staticmethod
    def _done(row: CallbackInbox, outcome: str, error: str | None) -> str:
        row.processed_at = utcnow()
        row.outcome = outcome
        row.error = error
        return outcome


def _phone_matches(phone: str) -> ColumnElement[bool] | None:
    """Which stored phones a callback's PhoneNumber can be: the same number when it is whole; when
    Safaricom masks it ("2547 ***** 126", refs/daraja.md §4 and §6.1), those showing the same digits at each
    end. None when too little shows to tell customers apart (no last digits, a hashed value)."""
    compact = re.sub(r"[\s-]", "", phone).removeprefix("+")
    if re.fullmatch(r"[0-9]+", compact):
        return Payment.phone == _international(compact)
    masked = re.fullmatch(r"([0-9]*)\*+([0-9]*)", compact)
    if masked is None or len(masked[2]) < MIN_VISIBLE_LAST_DIGITS:
        return None
    return and_(Payment.phone.startswith(_international(masked[1])), Payment.phone.endswith(masked[2]))


def _international(digits: str) -> str:
    return "254" + digits[1:] if digits.startswith("0") else digits


def _shown_phone(phone: str) -> str:
    return mask_msisdn(phone) if re.fullmatch(r"[0-9]+", phone) else phone[:20]


def _unstorable_field(data: object) -> str | None:
    """The reason a decoded callback cannot be applied because of its text (a NUL or lone surrogate from
    a JSON escape would fail the query or column it reached), or None."""
    for path, text in strings_in(data):
        if has_unstorable(text):
            field = ".".join(shown(p) for p in path)
            return f"callback {field} holds text no database can store (NUL or a lone surrogate)"
    return None


callbacks = CallbackService()
