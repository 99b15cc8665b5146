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


# ResultCodes of the money-out Results (B2C, Transaction Status, Account Balance, Reversal), in words an
# operator can act on. Union of the B2C and Reversal tables and the legacy ApiResult codes of refs/daraja.md
# §2.2, §7, §10; "2032" was observed on a Transaction Status for an unknown receipt.
_INITIATOR_ROLE = (
    "The API initiator does not have the role for this request on the M-Pesa organisation portal (payouts "
    'need "ORG B2C API initiator", reversals "Org Reversals Initiator").'
)
MONEY_OUT_RESULT_CODES: dict[str, str] = {
    "0": "Done",
    "1": "The paying account's balance is too low: top up the B2C utility account, then try again.",
    "2": "The amount is below the M-Pesa minimum for this transaction (KES 10 for a payout).",
    "3": "The amount is above the M-Pesa maximum for one transaction. Send a smaller amount.",
    "4": "This payout would take the customer over their daily M-Pesa limit. Try again tomorrow.",
    "8": "This payout would take the customer's M-Pesa over its maximum balance.",
    "11": "The paying account is not in a state that allows this transaction: contact Safaricom.",
    "15": "M-Pesa saw this request as a duplicate.",
    "17": "M-Pesa had an internal failure. Check the transaction's status before trying again.",
    "18": (
        "The initiator's credentials failed: check the initiator password and that the certificate "
        "matches the environment."
    ),
    "20": "M-Pesa does not know the initiator: check the initiator name.",
    "21": _INITIATOR_ROLE,
    "22": "The initiator is not active on the M-Pesa organisation portal.",
    "24": "M-Pesa says a mandatory field is missing.",
    "25": "M-Pesa says a request parameter is invalid.",
    "26": "M-Pesa is busy. Wait a minute, then check the transaction's status before trying again.",
    "29": "M-Pesa says the command is invalid for this short code.",
    "2001": (
        "The initiator information is invalid: check the initiator name and password, and that the "
        "certificate is the current one for this environment (sandbox or production)."
    ),
    "2006": "The account's status does not allow this transaction: contact Safaricom.",
    "2028": "The short code is not allowed to make this kind of transaction: check the products on it.",
    "2032": "M-Pesa has no transaction with this receipt number.",
    "2040": "The recipient is not a registered M-Pesa customer.",
    "8006": (
        "The initiator's password is locked after failed attempts: reset it on the M-Pesa organisation "
        "portal."
    ),
    "R000001": "This transaction has already been reversed.",
    "R000002": "The transaction to reverse is unknown: check the receipt number.",
    "SFC_IC0003": "The recipient's number is invalid or not on M-Pesa.",
}


def describe_money_out_result(result_code: str) -> str:
    """An operator-facing message for the ResultCode of a B2C, status, balance or reversal Result."""
    code = str(result_code).strip()
    return MONEY_OUT_RESULT_CODES.get(code) or f"M-Pesa declined the request (code {code})."
