"""Pesapal API 3.0 values at the boundary (refs §5): errors, credentials, replies, request checks, JSON.

Kept apart from the HTTP client so the rules about what Pesapal accepts and returns can be read (and tested)
without a network. Import the public names from :mod:`core.billing.pesapal`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

MAX_REFERENCE = 50
MAX_DESCRIPTION = 100
REFERENCE_CHARS = re.compile(r"[A-Za-z0-9\-_.:]+")
CURRENCY = re.compile(r"[A-Z]{3}")

# status_code values (refs §5.5).
INVALID = 0
COMPLETED = 1
FAILED = 2
REVERSED = 3
STATUS_NAMES = {INVALID: "INVALID", COMPLETED: "COMPLETED", FAILED: "FAILED", REVERSED: "REVERSED"}


class PesapalError(Exception):
    """A Pesapal call that did not succeed. ``message`` says what to do; ``code`` is Pesapal's own error code
    when it sent one; ``retry`` says whether the same call may succeed later unchanged."""

    default_retry: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry: bool | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry = self.default_retry if retry is None else retry
        self.http_status = http_status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code!r}, retry={self.retry!r}, "
            f"http_status={self.http_status!r})"
        )


class PesapalAuthError(PesapalError):
    """Pesapal refused our consumer key/secret (or every token issued for them): fix the configuration."""


class PesapalUnavailable(PesapalError):
    """Pesapal could not be reached or failed on its side; the same call may work later."""

    default_retry = True


@dataclass(frozen=True)
class PesapalCredentials:
    consumer_key: str
    consumer_secret: str

    def __post_init__(self) -> None:
        if not self.consumer_key.strip() or not self.consumer_secret.strip():
            raise ValueError(
                "Pesapal credentials need both a consumer key and a consumer secret: copy them from the "
                "Pesapal merchant dashboard (or the sandbox test credentials)."
            )

    def __repr__(self) -> str:
        return "PesapalCredentials(consumer_key='***', consumer_secret='***')"


@dataclass(frozen=True)
class OrderCreated:
    order_tracking_id: str
    merchant_reference: str
    redirect_url: str


def parse_datetime(value: object) -> datetime | None:
    """Pesapal's .NET timestamps (``2021-08-26T12:29:30.5177702Z``, ``2022-04-30T07:41:09.763``).

    Zone-less values are taken as UTC: that is what the stand-in sends and what ``expiryDate`` is documented
    as; the zone of the status ``created_date`` is not documented.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip())
    else:
        raise ValueError("expected an ISO 8601 date string")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class TransactionStatus(BaseModel):
    """GetTransactionStatus, trimmed to what billing uses (refs §5.5). Blank strings read as None."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status_code: int
    payment_status_description: str
    confirmation_code: str | None = None
    amount: Decimal
    currency: str
    merchant_reference: str
    payment_method: str | None = None
    payment_account: str | None = None
    created_date: datetime | None = None
    description: str | None = None

    @field_validator("confirmation_code", "payment_method", "payment_account", "description", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("amount", mode="before")
    @classmethod
    def _exact_amount(cls, value: object) -> object:
        # Through str, so a float that slipped in becomes 500.1, not 500.1000000000000227...
        if isinstance(value, float):
            return Decimal(str(value))
        return value

    @field_validator("created_date", mode="before")
    @classmethod
    def _dotnet_date(cls, value: object) -> datetime | None:
        return parse_datetime(value)

    @property
    def _named(self) -> str:
        return self.payment_status_description.strip().upper()

    @property
    def consistent(self) -> bool:
        """Whether ``status_code`` and ``payment_status_description`` name the same state."""
        return STATUS_NAMES.get(self.status_code) == self._named

    # Money moves only when both fields say COMPLETED; a reversal or failure is believed from either one,
    # since wrongly withholding is recoverable and wrongly granting is not.
    @property
    def completed(self) -> bool:
        return self.status_code == COMPLETED and self._named == "COMPLETED"

    @property
    def reversed(self) -> bool:
        return self.status_code == REVERSED or self._named == "REVERSED"

    @property
    def failed(self) -> bool:
        if self.completed or self.reversed:
            return False
        return self.status_code == FAILED or self._named == "FAILED"

    @property
    def pending(self) -> bool:
        """INVALID: not paid (yet). Pesapal also says this while the payer is still on its page."""
        return not (self.completed or self.reversed or self.failed)


def _present(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _absolute_url(name: str, value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"{name} must be an absolute http(s) URL, like https://lipapush.example/…; got {value!r}"
        )
    return value.strip()


def check_amount(amount: Decimal) -> Decimal:
    if isinstance(amount, bool) or not isinstance(amount, Decimal):
        raise ValueError(f"amount must be a Decimal (money is never a float); got {type(amount).__name__}")
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"amount must be greater than zero; got {amount}")
    # Ledger amounts are whole cents; more places would be rounded by Pesapal in a way we cannot see.
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"amount can have at most 2 decimal places; got {amount}")
    return amount


def order_payload(
    *,
    merchant_reference: str,
    amount: Decimal,
    currency: str,
    description: str,
    callback_url: str,
    notification_id: str,
    email: str | None,
    phone: str | None,
    first_name: str | None,
    account_number: str | None,
) -> dict[str, Any]:
    """The SubmitOrderRequest body (refs §5.4), refusing what Pesapal would refuse with a ValueError."""
    if not merchant_reference:
        raise ValueError("merchant_reference is required: use the order's own unique reference.")
    if len(merchant_reference) > MAX_REFERENCE:
        raise ValueError(
            f"merchant_reference is {len(merchant_reference)} characters; Pesapal allows at most "
            f"{MAX_REFERENCE}: shorten it."
        )
    if not REFERENCE_CHARS.fullmatch(merchant_reference):
        raise ValueError(
            f"merchant_reference {merchant_reference!r} may only contain letters, digits and - _ . : "
            "(no spaces)."
        )
    if not CURRENCY.fullmatch(currency):
        raise ValueError(f"currency must be a 3-letter upper-case ISO code such as KES; got {currency!r}")
    if not description.strip():
        raise ValueError("description is required: say what the payer is paying for.")
    if len(description) > MAX_DESCRIPTION:
        raise ValueError(
            f"description is {len(description)} characters; Pesapal allows at most {MAX_DESCRIPTION}: "
            "shorten it."
        )
    if not notification_id.strip():
        raise ValueError("notification_id is required: pass the ipn_id returned by ensure_ipn().")
    email, phone = _present(email), _present(phone)
    if email is None and phone is None:
        raise ValueError("Pesapal needs the payer's email or phone number: give at least one.")
    if email is not None and "@" not in email:
        raise ValueError(f"email {email!r} is not an email address.")
    address: dict[str, str] = {}
    if email is not None:
        address["email_address"] = email
    if phone is not None:
        address["phone_number"] = phone
    if (name := _present(first_name)) is not None:
        address["first_name"] = name
    body: dict[str, Any] = {
        "id": merchant_reference,
        "currency": currency,
        "amount": check_amount(amount),
        "description": description,
        "callback_url": _absolute_url("callback_url", callback_url),
        "notification_id": notification_id.strip(),
        "billing_address": address,
    }
    if (account := _present(account_number)) is not None:
        body["account_number"] = account
    return body


def encode_json(value: object) -> bytes:
    """JSON with Decimals written as numbers, digit for digit: the json module would need a float for that."""
    return _encode(value).encode()


def _encode(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value)


def decode_json(raw: bytes) -> Any:
    """Pesapal's JSON with every fractional number read as a Decimal, so an amount is never a float."""
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, InvalidOperation):
        return None


def error_object(data: object) -> tuple[str, str] | None:
    """``(code, message)`` from a reply's ``error`` object, or None when there is no error.

    Success replies carry ``"error": null`` or an object whose members are all null (status replies do);
    only a non-null ``code`` means failure.
    """
    if not isinstance(data, Mapping):
        return None
    error = data.get("error")
    if not isinstance(error, Mapping):
        return None
    code = error.get("code")
    if code is None or (isinstance(code, str) and not code.strip()):
        return None
    message = error.get("message")
    return str(code).strip(), str(message).strip() if message is not None else ""


def body_status(data: object) -> int | None:
    """The body's own ``status`` (a string such as ``"200"``), which need not match the HTTP status."""
    if not isinstance(data, Mapping):
        return None
    status = data.get("status")
    if isinstance(status, int) and not isinstance(status, bool):
        return status
    if isinstance(status, str) and status.strip().isdigit():
        return int(status.strip())
    return None
