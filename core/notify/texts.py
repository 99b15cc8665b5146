"""Message texts the platform sends on its own (from jobs), shared with the bot's replies.

Telegram messages are HTML (the bot's default parse mode), so every value is escaped.
"""

from __future__ import annotations

import uuid
from html import escape
from typing import Protocol

from core.money import format_kes
from core.payments.models import PaymentSource, PaymentStatus

# Buttons added by jobs must match the bot's callback-data factories (bots/keyboards.py):
# PayCb(prefix="pay") packs to "pay:<action>:<pid>", OnbCb to "onb:<action>:<value>", MenuCb to "m:<action>".
RETRY_PAYMENT_CALLBACK = "pay:again:{payment_id}"
RETRY_VERIFICATION_CALLBACK = "onb:retry:"
OPEN_MENU_CALLBACK = "m:home_menu"


class PaymentView(Protocol):
    """What the texts need: a Payment row or its PaymentOut schema."""

    id: uuid.UUID
    status: PaymentStatus
    source: PaymentSource
    amount: int
    phone: str
    customer_name: str | None
    receipt: str | None
    result_desc: str | None


def local_phone(msisdn: str) -> str:
    return "0" + msisdn[3:] if msisdn.startswith("254") and len(msisdn) == 12 else msisdn


def payment_status(p: PaymentView) -> str:
    if p.source is PaymentSource.onboarding:
        return verification_status(p)
    who = escape(p.customer_name) + f" ({local_phone(p.phone)})" if p.customer_name else local_phone(p.phone)
    amount = format_kes(p.amount)
    if p.status is PaymentStatus.pending:
        return f"⏳ M-Pesa prompt sent to {who} for {amount}.\nWaiting for the customer to enter their PIN…"
    if p.status is PaymentStatus.success:
        receipt = f"\nReceipt <b>{escape(p.receipt)}</b>" if p.receipt else ""
        return f"✅ <b>Paid</b>: {amount} from {who}.{receipt}"
    reason = escape(p.result_desc or "M-Pesa did not complete the payment.")
    label = {
        PaymentStatus.cancelled: "Cancelled",
        PaymentStatus.timeout: "No response",
        PaymentStatus.expired: "Expired",
    }.get(p.status, "Not paid")
    return f"❌ <b>{label}</b>: {amount} from {who}.\n{reason}"


def verification_status(p: PaymentView) -> str:
    if p.status is PaymentStatus.pending:
        return (
            f"📲 KES 1 test payment sent to {local_phone(p.phone)}. "
            "Approve it on the phone to activate your business…"
        )
    if p.status is PaymentStatus.success:
        return "✅ <b>Test payment received. Your business is active</b>: you can request payments now."
    reason = escape(p.result_desc or "M-Pesa did not complete the payment.")
    return f"❌ The test payment did not go through: {reason}\nCheck the phone and try again."


def payment_buttons(p: PaymentView) -> list[list[str]] | None:
    if p.source is PaymentSource.onboarding:
        if p.status is PaymentStatus.success:
            return [["📋 Open menu", OPEN_MENU_CALLBACK]]
        if p.status.is_final:
            return [["🔁 Retry the test", RETRY_VERIFICATION_CALLBACK]]
        return None
    # A top-up is paid to the platform, not by a customer: "send again" would bill the wrong party.
    if p.source is PaymentSource.topup:
        return None
    if p.status.is_final and p.status is not PaymentStatus.success:
        return [["🔁 Send again", RETRY_PAYMENT_CALLBACK.format(payment_id=p.id)]]
    return None


def owner_payment_note(p: PaymentView) -> str:
    """For the owner's chat when a payment started elsewhere (API, USSD) ends, or a customer paid the
    till or paybill straight (C2B)."""
    via = "paid to your till/paybill" if p.source is PaymentSource.c2b else f"via {p.source.value.upper()}"
    return f"{payment_status(p)}\n<i>{via}</i>"


# --- SMS (plain GSM-7 text, one 160-character part where the values allow) ---

DEFAULT_RECEIPT_TEMPLATE = "{business}: we received {amount} from you, M-Pesa receipt {receipt}. Thank you!"
RECEIPT_FIELDS = ("business", "amount", "receipt", "date")


def sms_payment_result(p: PaymentView) -> str:
    """The merchant's SMS when a push they started from USSD ends."""
    amount, who = format_kes(p.amount), local_phone(p.phone)
    if p.source is PaymentSource.topup:
        if p.status is PaymentStatus.success:
            return f"lipapush: wallet top-up of {amount} received. Receipt {p.receipt or '-'}."
        return f"lipapush: wallet top-up of {amount} was not paid. {_short_reason(p)}"
    if p.status is PaymentStatus.success:
        return f"lipapush: PAID {amount} from {who}. Receipt {p.receipt or '-'}."
    label = {
        PaymentStatus.cancelled: "CANCELLED",
        PaymentStatus.timeout: "NO RESPONSE",
        PaymentStatus.expired: "EXPIRED",
    }.get(p.status, "NOT PAID")
    return f"lipapush: {label} {amount} from {who}. {_short_reason(p)}"


def _short_reason(p: PaymentView) -> str:
    reason = p.result_desc or "M-Pesa did not complete the payment."
    return reason if len(reason) <= 90 else reason[:87].rstrip() + "..."


def validate_receipt_template(template: str) -> str:
    """A template may use {business}, {amount}, {receipt} and {date}; anything else is refused with
    the name of the bad field, and the longest rendering must fit two SMS parts."""
    import string

    template = " ".join(template.split())
    if not template:
        raise ValueError("The receipt template is empty.")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        raise ValueError(
            "The receipt template has an unmatched { or }: write {{ or }} for a brace."
        ) from None
    for _, field, spec, conv in parts:
        if field is None:
            continue
        if field not in RECEIPT_FIELDS or spec or conv:
            raise ValueError(
                f"Unknown field {{{field}}} in the receipt template: use "
                + ", ".join("{" + f + "}" for f in RECEIPT_FIELDS)
                + "."
            )
    longest = template.format(
        business="B" * 40, amount="KES 250,000", receipt="UKN1234567", date="23 Nov 2026 23:59"
    )
    if len(longest) > 306:
        raise ValueError("The receipt template is too long: keep it under 250 characters so it fits two SMS.")
    return template


def receipt_sms(template: str | None, *, business: str, amount: int, receipt: str | None, date: str) -> str:
    return (template or DEFAULT_RECEIPT_TEMPLATE).format(
        business=business[:40], amount=format_kes(amount), receipt=receipt or "-", date=date
    )
