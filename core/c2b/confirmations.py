"""A C2B confirmation becomes a payment, once.

M-Pesa POSTs a confirmation when a customer paid the short code straight (no prompt); it is stored raw in
the callback inbox and applied here, in a job (core.mpesa_inbox). Decisions, in the order they apply:

1. **Refused and recorded** (`c2b_decisions`, inbox outcome `rejected`): a confirmation for another short
   code than the channel's (paybill number, or a till's Store or till number), for a B2C channel, with an
   amount below KES 1 or above what M-Pesa can move in one payment, a TransID that is not a receipt, or a
   TransTime in the future. Nothing is counted.
2. **Idempotent by TransID**: the receipt is unique among payments, so a TransID already held by a payment
   changes nothing (`duplicate`; `duplicate_of_push` when an STK push's success holds it). Three
   deliveries of one confirmation make one payment, one book entry, one commission, one webhook.
3. **Never counted twice with an STK push.** Whether Daraja also reports an STK push's payment to the C2B
   confirmation URL is not documented (refs/daraja.md §16); integrators report that it can. So a
   confirmation is first matched to a push of the same channel, amount and phone, made shortly before:
   - with the payer's full number (v1):
     - a push already paid whose receipt we never learned (settled by the status query) learns this one,
       and nothing else happens (`duplicate_of_push`);
     - a push still waiting for M-Pesa's answer is settled by this confirmation (`settled_push`): M-Pesa
       reports that exactly this money came from that phone, so the push is paid, with this receipt. Its
       STK callback, when it comes, only adds facts; a status query finds it final. Counted once. Several
       pushes that could be it: the confirmation waits (retried by the inbox) for their callbacks to
       claim the receipt, and after the grace period settles the oldest.
   - with a masked number (v2), whose visible digits about a thousand customers share, no push is ever
     called paid on its strength: the confirmation waits while a push that could be it is pending (its
     callback usually claims the receipt within seconds: then `duplicate_of_push`), and after the grace
     period it becomes a payment of its own, flagged with the push it may duplicate, so the merchant can
     check the statement if that push is reported paid too.
4. Otherwise a **new payment**, source `c2b`, status `success`:
   - amount: whole shillings. M-Pesa amounts are whole; a fractional one (forged, or a change on their
     side) is recorded rounded *down* (never more than was received) and flagged with the exact amount,
     which `c2b_payments.amount_cents` also keeps. Commission is on the recorded amount.
   - phone: the full number when M-Pesa sends one (v1). A masked number (v2: "2547 ***** 126") is matched
     to the customer book: when its visible digits and the payer's name (exactly, ignoring case) fit
     exactly one customer, the payment takes that customer's number and joins the book. Otherwise the
     payment keeps the compact mask ("2547*****126") and stays **out of the book**: about a thousand
     customers share each mask, so counting by it would merge strangers' totals, and a masked number
     cannot be texted. Such payments still count in the dashboards, earn commission and are announced.
   - name from FirstName/MiddleName/LastName; account_reference = BillRefNumber cut to the column's 12
     characters (the full one is kept in `c2b_payments`); description = TransactionType ("Pay Bill");
     mode = the channel's; created_at = completed_at = transaction_date = TransTime (East Africa Time,
     stored UTC).
   - The same PaymentFinalised as a push's success follows (core.payments.service.record_received), so
     the customer book, commission, the merchant's message and webhooks (payment.succeeded, source c2b)
     all follow, once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.c2b.models import C2BDecision, C2BPaymentFacts, DecisionStage
from core.config import Settings
from core.customers.models import Customer
from core.daraja.c2b import C2BPayment, parse_c2b_payment
from core.db import utcnow
from core.money import MPESA_MAX_AMOUNT
from core.mpesa_inbox.registry import NotYetMatched
from core.mpesa_inbox.service import ORPHAN_AFTER
from core.payments.models import CallbackInbox, Payment, PaymentSource, PaymentStatus
from core.payments.service import payments
from core.tenants.models import MpesaChannel
from core.tenants.service import tenants

log = logging.getLogger(__name__)

# A push this long before the payment can still be the one it answers (the STK adoption window's idea:
# two expiries, core.payments.callbacks.ADOPT_WITHIN_EXPIRIES), and this long after it, for the clocks
# of M-Pesa and of this server.
PUSH_WINDOW_EXPIRIES = 2
CLOCK_SLACK = timedelta(minutes=5)
# A TransTime this far ahead of our clock cannot be a payment that happened.
FUTURE_SLACK = timedelta(minutes=10)
MIN_VISIBLE_LAST_DIGITS = 3
REFERENCE_COLUMN = 12
DESCRIPTION_COLUMN = 13
PHONE_COLUMN = 12


@dataclass(frozen=True)
class Payer:
    phone: str  # what the payment's phone column holds
    in_book: bool
    from_book: bool  # masked, and matched to the one customer it can be


async def apply(session: AsyncSession, row: CallbackInbox, data: Any, settings: Settings) -> str:
    """The inbox handler's work for one stored confirmation (see the module's docstring). Raises
    ValueError for a body that is not a confirmation (the inbox records it `malformed`) and NotYetMatched
    while it waits for pushes to claim it."""
    paid = parse_c2b_payment(data)
    channel = await session.get(MpesaChannel, row.channel_id)
    if channel is None:  # the row cascades with its channel; kept for type narrowing
        return "rejected"
    problem = implausible(paid, channel)
    if problem is not None:
        return refuse(session, channel, paid, problem)

    holder = await session.scalar(select(Payment).where(Payment.receipt == paid.trans_id))
    if holder is not None:
        return "duplicate" if holder.source is PaymentSource.c2b else "duplicate_of_push"
    claim = await _claim_push(session, row, channel, paid, settings)
    if claim.outcome is not None:
        return claim.outcome

    tenant = await tenants.get(session, channel.tenant_id)
    payer = await _payer(session, channel, paid)
    amount, flag = _amount(paid)
    flag = flag or claim.flag
    when = paid.trans_time
    payment = Payment(
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        mode=channel.mode,
        source=PaymentSource.c2b,
        status=PaymentStatus.success,
        amount=amount,
        paid_amount=amount,
        phone=payer.phone,
        paid_phone=(paid.msisdn or "")[:20] or None,
        customer_name=_name(paid),
        account_reference=(paid.bill_ref_number or "")[:REFERENCE_COLUMN],
        description=(paid.transaction_type or "C2B")[:DESCRIPTION_COLUMN],
        receipt=paid.trans_id,
        result_code="0",
        result_desc="Paid straight to the till or paybill (C2B).",
        flag=flag,
        transaction_date=when,
        created_at=when,
        completed_at=when,
        updated_at=utcnow(),
    )
    if not await payments.record_received(
        session, tenant=tenant, payment=payment, settings=settings, in_book=payer.in_book
    ):
        return "duplicate"  # another delivery recorded it while this one ran
    session.add(
        C2BPaymentFacts(
            payment_id=payment.id,
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            trans_id=paid.trans_id,
            transaction_type=_cut(paid.transaction_type, 40),
            business_short_code=paid.business_short_code[:20],
            bill_ref_number=_cut(paid.bill_ref_number, 100),
            invoice_number=_cut(paid.invoice_number, 100),
            third_party_trans_id=_cut(paid.third_party_trans_id, 100),
            msisdn=_cut(paid.msisdn, 64),
            amount_cents=paid.amount_cents,
            org_account_balance_cents=paid.org_account_balance_cents,
            phone_from_book=payer.from_book,
        )
    )
    await session.flush()
    return "applied"


def implausible(paid: C2BPayment, channel: MpesaChannel) -> str | None:
    """Why a readable confirmation cannot be a payment to this channel (None when it can)."""
    if not channel.kind.collects:
        return "a B2C (payout) channel does not receive customer payments"
    codes = {channel.business_short_code, channel.till_number} - {None}
    if paid.business_short_code not in codes:
        return (
            f"it is for short code {paid.business_short_code[:20]!r}, not this channel's "
            f"({' or '.join(sorted(c for c in codes if c))})"
        )
    if not (paid.trans_id.isascii() and paid.trans_id.isalnum() and len(paid.trans_id) <= 20):
        return f"TransID {paid.trans_id[:40]!r} is not an M-Pesa receipt number"
    if not 100 <= paid.amount_cents <= MPESA_MAX_AMOUNT * 100:
        return (
            f"the amount KES {paid.amount_cents / 100:,.2f} is outside what one M-Pesa payment can be "
            f"(1 to {MPESA_MAX_AMOUNT:,})"
        )
    if paid.trans_time > utcnow() + FUTURE_SLACK:
        return f"TransTime {paid.trans_time:%Y-%m-%d %H:%M} (EAT) is in the future"
    return None


def refuse(session: AsyncSession, channel: MpesaChannel, paid: C2BPayment, reason: str) -> str:
    """Record why a confirmation was not counted, where the merchant can read it."""
    log.warning("c2b confirmation %s on channel %s refused: %s", paid.trans_id[:40], channel.id, reason)
    session.add(
        C2BDecision(
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            stage=DecisionStage.confirmation,
            accepted=False,
            reason=f"Not recorded: {reason}.",
            trans_id=paid.trans_id[:64],
            amount_cents=paid.amount_cents,
            bill_ref_number=_cut(paid.bill_ref_number, 100),
            msisdn=_cut(paid.msisdn, 64),
        )
    )
    return "rejected"


def _amount(paid: C2BPayment) -> tuple[int, str | None]:
    whole, cents = divmod(paid.amount_cents, 100)
    if not cents:
        return whole, None
    return whole, (
        f"M-Pesa reported KES {paid.amount_cents / 100:,.2f}; M-Pesa amounts are whole shillings, so it "
        f"was recorded as KES {whole:,}: check your M-Pesa statement"
    )


def _name(paid: C2BPayment) -> str | None:
    name = " ".join((paid.payer_name or "").split())
    return name[:100] or None


def _cut(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


# -- the payer ------------------------------------------------------------------------------------------
def _mask_parts(msisdn: str | None) -> tuple[str, str] | None:
    """(leading digits, trailing digits) of a masked number ("2547 ***** 126" → ("2547", "126")) in
    international form, or None when it is not a mask that shows enough to match anything."""
    if not msisdn:
        return None
    compact = re.sub(r"[\s-]", "", msisdn).removeprefix("+")
    masked = re.fullmatch(r"([0-9]*)\*+([0-9]*)", compact)
    if masked is None or len(masked[2]) < MIN_VISIBLE_LAST_DIGITS:
        return None
    head = "254" + masked[1][1:] if masked[1].startswith("0") else masked[1]
    return head, masked[2]


def shown_phone(msisdn: str | None) -> str:
    """What a payment whose number came masked keeps as its phone, in the column's 12 characters: the
    compact mask ("2547*****126"), or "" when nothing usable was sent (a hashed number, none at all)."""
    parts = _mask_parts(msisdn)
    if parts is None:
        return ""
    head, tail = parts
    if len(head) + len(tail) >= PHONE_COLUMN:
        head, tail = head[:4], tail[-MIN_VISIBLE_LAST_DIGITS:]
    return head + "*" * (PHONE_COLUMN - len(head) - len(tail)) + tail


def _phone_matches(column: Any, paid: C2BPayment) -> ColumnElement[bool] | None:
    """Which stored phones the payer's number can be: the same number when whole; those with the same
    digits at each end when masked; None when it tells nothing (absent, hashed)."""
    if paid.phone is not None:
        return column == paid.phone
    parts = _mask_parts(paid.msisdn)
    if parts is None:
        return None
    head, tail = parts
    return and_(column.startswith(head), column.endswith(tail), func.length(column) == PHONE_COLUMN)


async def _payer(session: AsyncSession, channel: MpesaChannel, paid: C2BPayment) -> Payer:
    if paid.phone is not None:
        return Payer(paid.phone, in_book=True, from_book=False)
    shown = shown_phone(paid.msisdn)
    name = _name(paid)
    phone = _phone_matches(Customer.phone, paid)
    if name is None or phone is None:
        return Payer(shown, in_book=False, from_book=False)
    found = list(
        await session.scalars(
            select(Customer.phone)
            .where(
                Customer.tenant_id == channel.tenant_id,
                Customer.mode == channel.mode,
                phone,
                func.lower(Customer.name) == name.lower(),
            )
            .limit(2)
        )
    )
    if len(found) == 1:
        return Payer(found[0], in_book=True, from_book=True)
    return Payer(shown, in_book=False, from_book=False)


# -- the push it may be ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    outcome: str | None = None  # the confirmation was a push's: nothing more to record
    flag: str | None = None  # recorded as its own payment, with this caution


async def _claim_push(
    session: AsyncSession, row: CallbackInbox, channel: MpesaChannel, paid: C2BPayment, settings: Settings
) -> Claim:
    """An STK push this confirmation may report (point 3 of the module's docstring)."""
    phone = _phone_matches(Payment.phone, paid)
    if phone is None or paid.amount_cents % 100:
        return Claim()  # nothing to tell a push by; a push is whole shillings
    window = timedelta(seconds=settings.EXPIRE_AFTER_SECONDS) * PUSH_WINDOW_EXPIRIES
    candidates = list(
        await session.scalars(
            select(Payment)
            .where(
                Payment.channel_id == channel.id,
                Payment.source != PaymentSource.c2b,
                Payment.amount == paid.amount_cents // 100,
                phone,
                or_(
                    and_(Payment.status == PaymentStatus.pending, Payment.pushed_at.is_not(None)),
                    and_(Payment.status == PaymentStatus.success, Payment.receipt.is_(None)),
                ),
                Payment.created_at >= paid.trans_time - window,
                Payment.created_at <= paid.trans_time + CLOCK_SLACK,
            )
            .order_by(Payment.created_at, Payment.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    if not candidates:
        return Claim()
    pending = [p for p in candidates if p.status is PaymentStatus.pending]
    waiting = utcnow() - row.received_at < ORPHAN_AFTER
    if paid.phone is None:
        # A masked number shows the same digits as about a thousand others: never enough to call another
        # customer's push paid. Give the pushes' own callbacks time to claim the receipt; then record it
        # as a payment of its own, with a caution that names the push.
        if pending and waiting:
            raise NotYetMatched(_waiting_for(pending, paid))
        push = candidates[0]
        state = (
            "still waiting for M-Pesa" if push.status is PaymentStatus.pending else "paid without a receipt"
        )
        return Claim(
            flag=f"Recorded as its own payment, though STK push {push.id} of the same amount from a number "
            f"showing the same digits was {state}: if both are counted as paid, check your M-Pesa statement"
        )
    for push in candidates:
        if push.status is PaymentStatus.success:
            added = await payments.add_facts(
                session, payment=push, receipt=paid.trans_id, transaction_date=paid.trans_time
            )
            if "receipt" in added.added:
                log.info("c2b confirmation %s is the receipt of push %s", paid.trans_id, push.id)
                return Claim(outcome="duplicate_of_push")
    if not pending:
        return Claim()
    if len(pending) > 1 and waiting:
        raise NotYetMatched(_waiting_for(pending, paid))
    push = pending[0]
    done = await payments.finalize(
        session,
        payment=push,
        status=PaymentStatus.success,
        settings=settings,
        result_code="0",
        result_desc="Paid: M-Pesa confirmed this payment to the till or paybill (C2B confirmation).",
        receipt=paid.trans_id,
        paid_amount=paid.amount_cents // 100,
        paid_phone=(paid.msisdn or "")[:20] or None,
        transaction_date=paid.trans_time,
    )
    if done.applied:
        log.info("c2b confirmation %s settled push %s", paid.trans_id, push.id)
        return Claim(outcome="settled_push")
    # Its own callback won the race: this confirmation is that payment's only if the receipts agree.
    return Claim(outcome="duplicate_of_push") if push.receipt == paid.trans_id else Claim()


def _waiting_for(pending: list[Payment], paid: C2BPayment) -> str:
    return (
        f"{len(pending)} STK push(es) of KES {paid.amount_cents // 100} from this number are still waiting "
        "for M-Pesa: their callbacks may claim this receipt"
    )
