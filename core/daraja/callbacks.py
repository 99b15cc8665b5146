"""Parsing of the STK callback Daraja POSTs to our CallBackURL.

Daraja's typing is loose (numbers as floats or strings, items without a Value, ResultCode as int or str),
so the parser accepts every shape seen in the wild and refuses only what cannot be read safely, such as a
fractional amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from core.daraja.schemas import StkCallback

EAT = ZoneInfo("Africa/Nairobi")

_MISSING = object()

# Far beyond any M-Pesa payment, yet small enough to turn into an int cheaply: "1e999999999" must not
# cost the worker minutes of CPU before it is refused.
AMOUNT_DIGITS_LIMIT = 15


class ImplausibleCallback(ValueError):
    """The callback reads, but a value in it cannot be true (an amount no M-Pesa payment can have)."""


def parse_stk_callback(payload: object) -> StkCallback:
    """Read ``{"Body": {"stkCallback": {...}}}`` into an :class:`StkCallback`.

    Raises ValueError naming the problem when the body is not an STK callback or a value cannot be read,
    and its subclass ImplausibleCallback when a value reads but cannot be true.
    """
    body = _mapping(payload, "the callback body")
    inner = _mapping(body.get("Body"), "Body")
    cb = _mapping(inner.get("stkCallback"), "Body.stkCallback")

    merchant_request_id = _required_text(cb, "MerchantRequestID")
    checkout_request_id = _required_text(cb, "CheckoutRequestID")
    result_code = _required_text(cb, "ResultCode")
    result_desc = cb.get("ResultDesc")
    if result_desc is not None and not isinstance(result_desc, str):
        raise ValueError("STK callback ResultDesc must be a string")

    items = _metadata_items(cb.get("CallbackMetadata"))
    amount = items.get("Amount", _MISSING)
    receipt = items.get("MpesaReceiptNumber", _MISSING)
    date = items.get("TransactionDate", _MISSING)
    phone = items.get("PhoneNumber", _MISSING)
    balance = items.get("Balance", _MISSING)

    return StkCallback(
        merchant_request_id=merchant_request_id,
        checkout_request_id=checkout_request_id,
        result_code=result_code,
        result_desc=result_desc or "",
        amount=None if _absent(amount) else parse_whole_amount(amount),
        receipt=None if _absent(receipt) else _scalar_text(receipt, "MpesaReceiptNumber"),
        transaction_date=None if _absent(date) else parse_daraja_datetime(date),
        phone=None if _absent(phone) else _scalar_text(phone, "PhoneNumber"),
        balance=None if _absent(balance) else _scalar_text(balance, "Balance"),
    )


def parse_whole_amount(value: object) -> int:
    """Amount as a whole number of shillings from ``1``, ``1.0``, ``"1"``, ``"1.00"`` or ``"05"``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"STK callback Amount must be a number, got {type(value).__name__}")
    try:
        # Decimal(str(...)) so that 1.00 and "1.00" compare exactly instead of through binary floats.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"STK callback Amount {value!r} is not a number") from None
    if not amount.is_finite() or amount != amount.to_integral_value():
        raise ValueError(f"STK callback Amount {value!r} is not a whole number of shillings")
    if amount != 0 and amount.adjusted() >= AMOUNT_DIGITS_LIMIT:
        raise ImplausibleCallback(f"STK callback Amount {value!r} is beyond any M-Pesa payment")
    return int(amount)


def parse_daraja_datetime(value: object) -> datetime:
    """Daraja's ``YYYYMMDDHHmmss`` (int or str, East Africa Time) as a timezone-aware datetime."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"STK callback TransactionDate must be YYYYMMDDHHmmss, got {type(value).__name__}")
    text = str(value).strip()
    if len(text) != 14 or not text.isdigit():
        raise ValueError(f"STK callback TransactionDate {text!r} is not YYYYMMDDHHmmss")
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=EAT)
    except ValueError:
        raise ValueError(f"STK callback TransactionDate {text!r} is not a valid date") from None


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"STK callback is malformed: {what} is missing or not an object")
    return value


def _required_text(cb: Mapping[str, Any], key: str) -> str:
    value = cb.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise ValueError(f"STK callback is malformed: {key} is missing or empty")
    return str(value).strip()


def _metadata_items(metadata: object) -> dict[str, object]:
    if metadata is None:
        return {}
    meta = _mapping(metadata, "CallbackMetadata")
    raw = meta.get("Item")
    if raw is None:
        return {}
    # Documented as a list; a single object is accepted too because other Daraja envelopes vary this way.
    entries = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(entries, list):
        raise ValueError("STK callback is malformed: CallbackMetadata.Item is not a list")
    items: dict[str, object] = {}
    for entry in entries:
        item = _mapping(entry, "a CallbackMetadata item")
        name = item.get("Name")
        if not isinstance(name, str):
            raise ValueError("STK callback is malformed: a CallbackMetadata item has no Name")
        items[name] = item.get("Value", _MISSING)
    return items


def _absent(value: object) -> bool:
    return value is _MISSING or value is None or value == ""


def _scalar_text(value: object, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"STK callback {key} must be a string or number")
    if isinstance(value, float) and value.is_integer():
        # A JSON number such as 254708374149.0 must not come out as "254708374149.0".
        return str(int(value))
    return str(value).strip()
