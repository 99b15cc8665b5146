"""The event types a developer can subscribe to, and what each one carries.

An event's `data` is the object as the API returns it (GET /api/payments/{id}, a voucher as the hotspot
API lists it), so a receiver needs no second schema; `version` counts that object's events (1, 2, …)
so a receiver can drop one older than what it already applied.
"""

from __future__ import annotations

from typing import Any

from core.payments.models import Payment, PaymentStatus
from core.payments.schemas import PaymentOut
from core.payouts.models import PayoutStatus

PAYMENT_SUCCEEDED = "payment.succeeded"
PAYMENT_FAILED = "payment.failed"
PAYMENT_CANCELLED = "payment.cancelled"
PAYMENT_EXPIRED = "payment.expired"
PAYMENT_FLAGGED = "payment.flagged"
VOUCHER_ISSUED = "voucher.issued"
PAYOUT_SUCCEEDED = "payout.succeeded"
PAYOUT_FAILED = "payout.failed"
REVERSAL_SUCCEEDED = "reversal.succeeded"
REVERSAL_FAILED = "reversal.failed"
# Sent only by "send test event", only to the endpoint asked; never subscribed to.
WEBHOOK_TEST = "webhook.test"

EVENT_TYPES: dict[str, str] = {
    PAYMENT_SUCCEEDED: "The customer paid: the receipt is in data.receipt.",
    PAYMENT_FAILED: "M-Pesa refused or could not complete the payment (data.result_code says why; "
    "a timeout, the customer's phone unreachable, is status 'timeout').",
    PAYMENT_CANCELLED: "The customer dismissed the prompt or entered a wrong PIN too often.",
    PAYMENT_EXPIRED: "M-Pesa never told us the outcome and asking it gave none: treat as not paid.",
    PAYMENT_FLAGGED: "M-Pesa reported something that disagrees with the request (another amount, a "
    "payment after it was given up): recorded, not trusted; data.flag says what.",
    VOUCHER_ISSUED: "A WiFi voucher was sold (hotspot providers): data.code is what the buyer types.",
    PAYOUT_SUCCEEDED: "M-Pesa paid a payout (B2C): the receipt is in data.receipt, the registered name "
    "of who received it in data.recipient_name.",
    PAYOUT_FAILED: "A payout was not paid: M-Pesa refused it (data.result_code and data.result_desc say "
    "why), or status 'timeout': M-Pesa never said how it ended, so it is not sent again; check the "
    "M-Pesa statement before paying again.",
    REVERSAL_SUCCEEDED: "M-Pesa sent a received payment back to the payer: data.payment_id is now "
    "'reversed', data.reversal_receipt is M-Pesa's id of the reversal.",
    REVERSAL_FAILED: "A confirmed reversal did not go through: M-Pesa refused it (data.result_desc says "
    "why), or status 'timeout': M-Pesa never answered, so check the statement before asking again.",
}

_BY_STATUS = {
    PaymentStatus.success: PAYMENT_SUCCEEDED,
    PaymentStatus.failed: PAYMENT_FAILED,
    PaymentStatus.timeout: PAYMENT_FAILED,
    PaymentStatus.cancelled: PAYMENT_CANCELLED,
    PaymentStatus.expired: PAYMENT_EXPIRED,
}


def payment_event_type(status: PaymentStatus) -> str:
    return _BY_STATUS[status]


# Money out's events are never implied, as the payouts scopes never are for a key: an endpoint gets
# them only when it names them (an endpoint of "every type" made before money out existed does not
# start receiving payouts), and naming them needs the right to read payouts (core.webhooks.use_cases).
MONEY_OUT_EVENTS: frozenset[str] = frozenset(
    {PAYOUT_SUCCEEDED, PAYOUT_FAILED, REVERSAL_SUCCEEDED, REVERSAL_FAILED}
)


def subscribed(event_types: list[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to `event_types` ([]: every type but money out's) gets this."""
    if event_type in MONEY_OUT_EVENTS:
        return event_type in event_types
    return not event_types or event_type in event_types


def payout_event_type(status: PayoutStatus) -> str:
    """payout.succeeded, or payout.failed for failed and timeout (data.status tells them apart)."""
    assert status.is_final
    return PAYOUT_SUCCEEDED if status is PayoutStatus.success else PAYOUT_FAILED


def payment_data(payment: Payment) -> dict[str, Any]:
    data = PaymentOut.model_validate(payment).model_dump(mode="json")
    data.setdefault("mode", payment.mode.value)
    return data


def check_event_types(requested: list[str] | None) -> list[str]:
    """The subscribed types, sorted and unique; None or [] is every type but money out's (which an
    endpoint names to get, `subscribed`). Unknown types are a ValueError naming the valid ones."""
    chosen = sorted(set(requested or []))
    unknown = [t for t in chosen if t not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"Unknown event type {', '.join(unknown)}; choose from {', '.join(EVENT_TYPES)}.")
    return chosen
