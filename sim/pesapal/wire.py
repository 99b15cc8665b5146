"""Pesapal API 3.0 wire details shared by the stand-in's modules (refs §5): error objects, dates, ids.

Pesapal reports failures in the body: ``{"error": {"error_type", "code", "message"}, "status": "<code>"}``.
The body's ``status`` is a string and need not match the HTTP status (refs §5.1), so clients must read the
body, never only the HTTP code.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Final

from sim.daraja.ids import mpesa_receipt_prefix

PROCESSED: Final = "Request processed successfully"

# status_code -> payment_status_description (refs §5.5).
INVALID: Final = 0
COMPLETED: Final = 1
FAILED: Final = 2
REVERSED: Final = 3
STATUS_DESCRIPTIONS: Mapping[int, str] = {
    INVALID: "INVALID",
    COMPLETED: "COMPLETED",
    FAILED: "FAILED",
    REVERSED: "REVERSED",
}

IPN_CHANGE: Final = "IPNCHANGE"
CALLBACK_URL: Final = "CALLBACKURL"
RECURRING: Final = "RECURRING"

# The error object Pesapal's status response carries even on success (every member null).
NULL_ERROR: Mapping[str, None] = {"error_type": None, "code": None, "message": None, "call_back_url": None}

_UPPER_ALNUM = string.ascii_uppercase + string.digits


class PesapalError(Exception):
    """An API failure rendered as Pesapal's error object.

    ``http_status`` is what the HTTP response carries (unless the HTTP-200 quirk is switched on);
    ``status`` is the body's own ``status`` string, which defaults to the HTTP status.
    """

    def __init__(
        self,
        http_status: int,
        code: str,
        message: str,
        *,
        error_type: str = "api_error",
        status: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message
        self.error_type = error_type
        self.status = status if status is not None else str(http_status)

    def body(self) -> dict[str, Any]:
        return {
            "error": {"error_type": self.error_type, "code": self.code, "message": self.message},
            "status": self.status,
        }


def bad_credentials() -> PesapalError:
    # The observed live answer to a wrong key/secret: an api_error, empty message, body status "500".
    return PesapalError(401, "invalid_consumer_key_or_secret_provided", "", status="500")


def invalid_token() -> PesapalError:
    return PesapalError(
        401, "invalid_api_credentials_provided", "Invalid Access Token", error_type="authentication_error"
    )


def invalid_field(message: str) -> PesapalError:
    return PesapalError(400, "invalid_field_value", message)


def missing_field(name: str) -> PesapalError:
    return PesapalError(400, "missing_required_field", f"{name} is required")


def utc_now() -> datetime:
    return datetime.now(UTC)


def dotnet_utc(moment: datetime) -> str:
    """``2021-08-26T12:29:30.5177702Z``: .NET's round-trip format with seven fractional digits."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


def status_date(moment: datetime) -> str:
    """``2022-04-30T07:41:09.763``: the status ``created_date`` (milliseconds, no zone; UTC here)."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}"


def guid() -> str:
    return str(uuid.uuid4())


def mpesa_receipt(day: date) -> str:
    return mpesa_receipt_prefix(day) + "".join(secrets.choice(_UPPER_ALNUM) for _ in range(7))


def card_confirmation_code() -> str:
    return str(1 + secrets.randbelow(9)) + "".join(str(secrets.randbelow(10)) for _ in range(21))


def mask_phone(phone: str) -> str:
    digits = "".join(c for c in phone if c.isdigit())
    if len(digits) < 8:
        return digits
    return digits[:4] + "*" * (len(digits) - 7) + digits[-3:]
