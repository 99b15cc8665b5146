"""Request validation for C2B register URL and simulate (refs §6.1, §6.2), first bad field reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.daraja.validation import MSISDN, SHORTCODE, invalid, matching, numeric_text, url_field, whole_amount

# Exactly these, sentence case: "completed" or "CANCELLED" are refused (refs §6.1).
RESPONSE_TYPES = frozenset({"Completed", "Cancelled"})
# CommandID → the TransactionType text of the validation and confirmation payloads.
C2B_COMMANDS = {"CustomerPayBillOnline": "Pay Bill", "CustomerBuyGoodsOnline": "Buy Goods"}
MAX_BILL_REF = 20


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    shortcode: str
    response_type: str
    confirmation_url: str
    validation_url: str | None


@dataclass(frozen=True, slots=True)
class SimulateRequest:
    shortcode: str
    command_id: str
    amount: int
    msisdn: str
    bill_ref: str


def validate_register(body: dict[str, Any]) -> RegisterRequest:
    shortcode = matching(body.get("ShortCode"), SHORTCODE, "ShortCode")
    response_type = body.get("ResponseType")
    if not isinstance(response_type, str) or response_type not in RESPONSE_TYPES:
        raise invalid("ResponseType")
    confirmation_url = url_field(body.get("ConfirmationURL"), "ConfirmationURL")
    raw_validation = body.get("ValidationURL")
    # Without a validation URL M-Pesa simply never asks; only the confirmation is needed.
    validation_url = None if raw_validation in (None, "") else url_field(raw_validation, "ValidationURL")
    return RegisterRequest(shortcode, response_type, confirmation_url, validation_url)


def validate_simulate(body: dict[str, Any]) -> SimulateRequest:
    shortcode = matching(body.get("ShortCode"), SHORTCODE, "ShortCode")
    command_id = body.get("CommandID")
    if not isinstance(command_id, str) or command_id not in C2B_COMMANDS:
        raise invalid("CommandID")
    amount = whole_amount(body.get("Amount"))
    msisdn = matching(body.get("Msisdn"), MSISDN, "Msisdn")
    raw_ref = body.get("BillRefNumber")
    # Buy goods has no account number: the doc sends null there.
    bill_ref = "" if raw_ref is None else numeric_text(raw_ref)
    if bill_ref is None or len(bill_ref) > MAX_BILL_REF:
        raise invalid("BillRefNumber")
    return SimulateRequest(shortcode, command_id, amount, msisdn, bill_ref)
