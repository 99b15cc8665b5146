"""C2B validation and confirmation: the payment Daraja POSTs to a registered short code's URLs, and the
replies it expects (refs/daraja.md §6.3).

One payload shape serves both: ``OrgAccountBalance`` is blank on validation and holds the new balance on
confirmation. The customer's number may arrive masked (``"2547 ***** 126"`` on v2, and Safaricom's 2026
masking may reach v1): ``phone`` is set only when a full Safaricom number can be read, ``msisdn`` keeps what
was sent, so a payer is never identified by a guess.

Amounts are integer cents, like the money-out results (``"5.00"`` is 500); times are East Africa Time.
Unknown keys are kept in ``extra``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.daraja.results import parse_cents, parse_eat_time, text_value

# Reply within about 8 s, or M-Pesa applies the registration's ResponseType (Completed or Cancelled).
VALIDATION_DEADLINE_SECONDS = 8

_FULL_MSISDN = re.compile(r"^(?:\+?254|0)([17]\d{8})$")

_KNOWN_KEYS = frozenset(
    {
        "TransactionType",
        "TransID",
        "TransTime",
        "TransAmount",
        "BusinessShortCode",
        "BillRefNumber",
        "InvoiceNumber",
        "OrgAccountBalance",
        "ThirdPartyTransID",
        "MSISDN",
        "FirstName",
        "MiddleName",
        "LastName",
    }
)


class C2BRejection(StrEnum):
    """Why a validation refuses a payment; the value is the ResultCode M-Pesa expects."""

    invalid_msisdn = "C2B00011"
    invalid_account = "C2B00012"
    invalid_amount = "C2B00013"
    invalid_kyc = "C2B00014"
    invalid_short_code = "C2B00015"
    other = "C2B00016"


class C2BPayment(BaseModel):
    model_config = ConfigDict(frozen=True)

    transaction_type: str
    trans_id: str
    trans_time: datetime
    amount_cents: int
    business_short_code: str
    bill_ref_number: str | None
    invoice_number: str | None
    org_account_balance_cents: int | None
    third_party_trans_id: str | None
    msisdn: str | None
    phone: str | None
    first_name: str | None
    middle_name: str | None
    last_name: str | None
    extra: dict[str, Any]

    @property
    def phone_masked(self) -> bool:
        """A number was sent but is not a readable Safaricom number (masked, hashed or foreign)."""
        return self.msisdn is not None and self.phone is None

    @property
    def payer_name(self) -> str | None:
        parts = [p for p in (self.first_name, self.middle_name, self.last_name) if p]
        return " ".join(parts) or None


def parse_c2b_payment(payload: object) -> C2BPayment:
    """Read a validation or confirmation body. Raises ValueError naming what is missing or unreadable."""
    if not isinstance(payload, Mapping):
        raise ValueError("C2B payload is malformed: the body is not an object")
    trans_id = _required(payload, "TransID")
    trans_time = parse_eat_time(payload.get("TransTime"))
    if trans_time is None:
        raise ValueError("C2B payload TransTime is missing or not YYYYMMDDHHmmss")
    amount = parse_cents(payload.get("TransAmount"), "TransAmount")
    if amount is None:
        raise ValueError("C2B payload TransAmount is missing")
    msisdn = text_value(payload.get("MSISDN"))
    return C2BPayment(
        transaction_type=text_value(payload.get("TransactionType")) or "",
        trans_id=trans_id,
        trans_time=trans_time,
        amount_cents=amount,
        business_short_code=_required(payload, "BusinessShortCode"),
        bill_ref_number=text_value(payload.get("BillRefNumber")),
        invoice_number=text_value(payload.get("InvoiceNumber")),
        org_account_balance_cents=parse_cents(payload.get("OrgAccountBalance"), "OrgAccountBalance"),
        third_party_trans_id=text_value(payload.get("ThirdPartyTransID")),
        msisdn=msisdn,
        phone=full_msisdn(msisdn),
        first_name=text_value(payload.get("FirstName")),
        middle_name=text_value(payload.get("MiddleName")),
        last_name=text_value(payload.get("LastName")),
        extra={k: v for k, v in payload.items() if k not in _KNOWN_KEYS},
    )


def full_msisdn(value: str | None) -> str | None:
    """``2547XXXXXXXX``/``2541XXXXXXXX`` when ``value`` is a full Safaricom number in any usual form, else
    None (masked, hashed, foreign or absent)."""
    if value is None:
        return None
    match = _FULL_MSISDN.match(re.sub(r"[\s-]", "", value))
    return f"254{match.group(1)}" if match else None


def validation_accepted(third_party_trans_id: str | None = None) -> dict[str, str]:
    """Reply to a validation that lets the payment through. A ``third_party_trans_id`` comes back in the
    confirmation, which can tie the two together."""
    reply = {"ResultCode": "0", "ResultDesc": "Accepted"}
    if third_party_trans_id:
        reply["ThirdPartyTransID"] = third_party_trans_id
    return reply


def validation_rejected(reason: C2BRejection) -> dict[str, str]:
    return {"ResultCode": C2BRejection(reason).value, "ResultDesc": "Rejected"}


def confirmation_reply() -> dict[str, Any]:
    """Reply to a confirmation (the documented body; the payment is complete whatever we answer)."""
    return {"ResultCode": 0, "ResultDesc": "Success"}


def _required(payload: Mapping[str, Any], key: str) -> str:
    text = text_value(payload.get(key))
    if text is None:
        raise ValueError(f"C2B payload is malformed: {key} is missing or empty")
    return text
