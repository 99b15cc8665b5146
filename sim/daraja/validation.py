"""Request validation with Daraja's error envelopes and its validation order (refs §3, §5, §12.3).

Order matters: Daraja reports only the first failing field, and client code that maps the
``Bad Request - Invalid <Field>`` suffix to a user message must see the same field the real API reports.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
TRANSACTION_TYPES = frozenset({"CustomerPayBillOnline", "CustomerBuyGoodsOnline"})
# Daraja rejects callback URLs containing these words anywhere, in any case (refs §11.7).
BANNED_URL_WORDS = ("mpesa", "m-pesa", "safaricom", "exe", "exec", "cmd", "sql", "query")

SHORTCODE = re.compile(r"\d{5,7}")
MSISDN = re.compile(r"254[17]\d{8}")
_TIMESTAMP = re.compile(r"\d{14}")
_AMOUNT = re.compile(r"\d+")


class DarajaError(Exception):
    """A synchronous Daraja error; rendered as the ``{requestId, errorCode, errorMessage}`` envelope."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(f"{code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


def invalid(field: str) -> DarajaError:
    return DarajaError(400, "400.002.02", f"Bad Request - Invalid {field}")


def merchant_error(message: str, request_id: str | None = None) -> DarajaError:
    return DarajaError(500, "500.001.1001", message, request_id)


@dataclass(frozen=True, slots=True)
class StkPushRequest:
    shortcode: str
    password: str
    timestamp: str
    transaction_type: str
    amount: int
    party_a: str
    party_b: str
    phone: str
    callback_url: str
    account_reference: str
    transaction_desc: str | None


@dataclass(frozen=True, slots=True)
class StkQueryRequest:
    shortcode: str
    password: str
    timestamp: str
    checkout_request_id: str


def expected_password(shortcode: str, passkey: str, timestamp: str) -> str:
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode()


def parse_json_object(content_type: str | None, raw: bytes) -> dict[str, Any]:
    # Daraja answers a form-encoded or unparsable body with "Invalid BusinessShortCode" (refs §3.3): it
    # looks for the first field, finds nothing, and names it.
    return _json_object(content_type, raw, invalid("BusinessShortCode"))


def parse_json_payload(content_type: str | None, raw: bytes) -> dict[str, Any]:
    """The body of a money-out or C2B request; anything but a JSON object is ``400.002.05 Invalid Request
    Payload``, the code Daraja documents for a malformed C2B body (refs §2.2)."""
    return _json_object(content_type, raw, DarajaError(400, "400.002.05", "Invalid Request Payload"))


def _json_object(content_type: str | None, raw: bytes, error: DarajaError) -> dict[str, Any]:
    if content_type is None or not content_type.lower().startswith("application/json"):
        raise error
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise error from None
    if not isinstance(body, dict):
        raise error
    return body


def numeric_text(value: object) -> str | None:
    """Numeric fields may be JSON numbers or strings (refs §2.3); bools and floats do not count as numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, str):
        return value
    return None


def matching(value: object, pattern: re.Pattern[str], field: str) -> str:
    text = numeric_text(value)
    if text is None or not pattern.fullmatch(text):
        raise invalid(field)
    return text


def _timestamp(value: object) -> str:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise invalid("Timestamp")
    return value


def whole_amount(value: object, field: str = "Amount") -> int:
    # Whole shillings only: "10.00" and 10.5 are refused by the real API (refs §11.6), so floats are too.
    text = numeric_text(value)
    if text is None or not _AMOUNT.fullmatch(text) or int(text) <= 0:
        raise invalid(field)
    return int(text)


def url_field(value: object, field: str = "CallBackURL") -> str:
    """A URL Daraja will POST to: http(s) with a host, none of the banned words (refs §11.7)."""
    if not isinstance(value, str):
        raise invalid(field)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(field)
    lowered = value.lower()
    if any(word in lowered for word in BANNED_URL_WORDS):
        raise invalid(field)
    return value


def _account_reference(value: object) -> str:
    text = numeric_text(value)
    if text is None or not text.strip() or len(text) > 12:
        raise invalid("AccountReference")
    return text


def _transaction_desc(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 13:
        raise invalid("TransactionDesc")
    return value


def _password(value: object) -> str:
    # A missing password is not a field-format error on Daraja; it simply fails the credential check.
    return value if isinstance(value, str) else ""


def validate_stk_push(body: dict[str, Any]) -> StkPushRequest:
    shortcode = matching(body.get("BusinessShortCode"), SHORTCODE, "BusinessShortCode")
    timestamp = _timestamp(body.get("Timestamp"))
    transaction_type = body.get("TransactionType")
    if not isinstance(transaction_type, str) or transaction_type not in TRANSACTION_TYPES:
        raise invalid("TransactionType")
    amount = whole_amount(body.get("Amount"))
    party_a = matching(body.get("PartyA"), MSISDN, "PartyA")
    phone = matching(body.get("PhoneNumber"), MSISDN, "PhoneNumber")
    party_b = matching(body.get("PartyB"), SHORTCODE, "PartyB")
    callback_url = url_field(body.get("CallBackURL"))
    account_reference = _account_reference(body.get("AccountReference"))
    transaction_desc = _transaction_desc(body.get("TransactionDesc"))
    return StkPushRequest(
        shortcode=shortcode,
        password=_password(body.get("Password")),
        timestamp=timestamp,
        transaction_type=transaction_type,
        amount=amount,
        party_a=party_a,
        party_b=party_b,
        phone=phone,
        callback_url=callback_url,
        account_reference=account_reference,
        transaction_desc=transaction_desc,
    )


def validate_stk_query(body: dict[str, Any]) -> StkQueryRequest:
    shortcode = matching(body.get("BusinessShortCode"), SHORTCODE, "BusinessShortCode")
    timestamp = _timestamp(body.get("Timestamp"))
    checkout_request_id = body.get("CheckoutRequestID")
    if not isinstance(checkout_request_id, str) or not checkout_request_id:
        raise invalid("CheckoutRequestID")
    return StkQueryRequest(
        shortcode=shortcode,
        password=_password(body.get("Password")),
        timestamp=timestamp,
        checkout_request_id=checkout_request_id,
    )
