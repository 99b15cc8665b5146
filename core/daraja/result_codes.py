"""What an STK ResultCode means for the payment, in words a merchant can act on."""

from __future__ import annotations

from typing import Literal

PaymentOutcome = Literal["success", "failed", "cancelled", "timeout"]

_SETUP_WRONG = (
    "M-Pesa refused the payment because the channel's Till/Paybill setup is wrong. Check the channel "
    "settings: for a Till, the short code is the Head Office/Store number and the till number is entered "
    "separately."
)
_PUSH_NOT_SENT = (
    "M-Pesa could not send the prompt. Try again with a shorter account reference; if it keeps failing, "
    "wait a few minutes."
)

RESULT_CODES: dict[str, tuple[PaymentOutcome, str]] = {
    "0": ("success", "Paid"),
    "1": ("failed", "The customer's M-Pesa balance is too low for this payment."),
    "2": ("failed", "The amount is below the M-Pesa minimum. Ask for at least KES 1."),
    "3": (
        "failed",
        "The amount is above the M-Pesa limit for one payment. Ask for a smaller amount or split "
        "the payment.",
    ),
    "4": (
        "failed",
        "This payment would take the customer over their daily M-Pesa limit. Ask for a smaller amount "
        "or try again tomorrow.",
    ),
    "8": (
        "failed",
        "This payment would take the receiving account over its M-Pesa maximum balance. Move money out, "
        "then try again.",
    ),
    "17": (
        "failed",
        "M-Pesa blocked a repeat of the same amount to the same customer. Wait 2 minutes, then try again.",
    ),
    "26": ("failed", "M-Pesa is busy. Wait a minute, then try again."),
    "1001": (
        "failed",
        "The customer already has an M-Pesa prompt open. Wait 1 to 3 minutes, then try again.",
    ),
    "1019": ("timeout", "The customer did not respond to the M-Pesa prompt in time."),
    "1025": ("failed", _PUSH_NOT_SENT),
    "9999": ("failed", _PUSH_NOT_SENT),
    "1032": ("cancelled", "The customer cancelled the M-Pesa prompt."),
    "1037": (
        "timeout",
        "The customer's phone could not be reached. "
        "Ask them to check it is on and has signal, then try again.",
    ),
    "2001": ("failed", "The customer entered a wrong M-Pesa PIN."),
    "2028": ("failed", _SETUP_WRONG),
    "8006": (
        "failed",
        "The customer's M-Pesa PIN is locked. They should call Safaricom on 100 or 200 to unlock it.",
    ),
    "SFC_IC0003": ("failed", _SETUP_WRONG),
}


def classify(result_code: str) -> tuple[PaymentOutcome, str]:
    """Map an STK ResultCode (callback or query) to a payment outcome and a merchant-facing message."""
    code = str(result_code).strip()
    known = RESULT_CODES.get(code)
    if known is not None:
        return known
    return "failed", f"M-Pesa declined the payment (code {code})."
