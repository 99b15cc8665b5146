"""What a person reads about a payout: the owner's message when one did not go through, and the one
line every front end (bot, CLI, panel) shows for a payout. Plain text: the owner's message goes by
Telegram or SMS alike (core.notify.telegram renders only payment statuses as HTML), so a recipient
called "A & B <Shop>" cannot break it."""

from __future__ import annotations

from typing import Protocol

from core.money import format_kes
from core.notify.texts import local_phone
from core.payouts.models import PayoutStatus


class PayoutView(Protocol):
    status: PayoutStatus
    amount: int
    phone: str
    name: str | None
    receipt: str | None
    recipient_name: str | None
    result_desc: str | None


def recipient(p: PayoutView) -> str:
    who = p.recipient_name or p.name
    return f"{who} ({local_phone(p.phone)})" if who else local_phone(p.phone)


def payout_line(p: PayoutView) -> str:
    """Plain text: `KES 1,500 to Wanjiku (0722000111): paid, receipt UCQ5UAQ403`."""
    head = f"{format_kes(p.amount)} to {recipient(p)}"
    if p.status is PayoutStatus.success:
        return f"{head}: paid, receipt {p.receipt}" if p.receipt else f"{head}: paid"
    if p.status in (PayoutStatus.pending, PayoutStatus.queued):
        return f"{head}: on its way"
    return f"{head}: {p.status.value}. {p.result_desc or ''}".rstrip()


def owner_message(p: PayoutView) -> str | None:
    """What the owner is told when a payout ends (Telegram, else SMS): failures and unknown outcomes,
    which need them to act; a paid payout is in the list and the webhooks, not in their chat."""
    who, amount = recipient(p), format_kes(p.amount)
    if p.status is PayoutStatus.failed:
        return f"⚠️ Payout not paid: {amount} to {who}. {p.result_desc or 'M-Pesa did not complete it.'}"
    if p.status is PayoutStatus.timeout:
        return (
            f"⚠️ Payout outcome unknown: {amount} to {who}. M-Pesa never said whether it was paid, and "
            "lipapush will not send it again. Check your M-Pesa statement for it before paying this "
            "person again."
        )
    return None
