"""Message texts the platform sends on its own (from jobs), shared with the bot's replies.

Telegram messages are HTML (the bot's default parse mode), so every value is escaped.
"""

from __future__ import annotations

from html import escape

from core.money import format_kes
from core.payments.models import Payment, PaymentStatus

# The bot's PayCb(prefix="pay") packs to "pay:<action>:<id>"; a button added by a job must match it.
RETRY_PAYMENT_CALLBACK = "pay:again:{payment_id}"


def local_phone(msisdn: str) -> str:
    return "0" + msisdn[3:] if msisdn.startswith("254") and len(msisdn) == 12 else msisdn


def payment_status(p: Payment) -> str:
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


def payment_buttons(p: Payment) -> list[list[str]] | None:
    if p.status.is_final and p.status is not PaymentStatus.success:
        return [["🔁 Send again", RETRY_PAYMENT_CALLBACK.format(payment_id=p.id)]]
    return None


def owner_payment_note(p: Payment) -> str:
    """For the owner's chat when a payment started elsewhere (API, USSD) ends."""
    return f"{payment_status(p)}\n<i>via {p.source.value.upper()}</i>"
