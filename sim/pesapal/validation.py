"""Request-body checks for the Pesapal stand-in (refs §5.3, §5.4).

Types are checked strictly (a JSON number where a string is due is rejected) so a client that serialises a
Decimal as a string, or a merchant reference as a number, fails here rather than against the real API.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sim.pesapal.wire import PesapalError, invalid_field, missing_field

MAX_REFERENCE = 50
MAX_DESCRIPTION = 100
REFERENCE_CHARS = re.compile(r"[A-Za-z0-9\-_.:]+")
CURRENCY = re.compile(r"[A-Z]{3}")
COUNTRY = re.compile(r"[A-Za-z]{2}")
REDIRECT_MODES = frozenset({"TOP_WINDOW", "PARENT_WINDOW"})
IPN_TYPES = frozenset({"GET", "POST"})
BILLING_FIELDS = (
    "email_address",
    "phone_number",
    "country_code",
    "first_name",
    "middle_name",
    "last_name",
    "line_1",
    "line_2",
    "city",
    "state",
    "postal_code",
    "zip_code",
)


@dataclass(frozen=True, slots=True)
class IpnRegistration:
    url: str
    notification_type: str


@dataclass(frozen=True, slots=True)
class OrderRequest:
    merchant_reference: str
    currency: str
    amount: float
    description: str
    callback_url: str
    notification_id: str
    billing_address: dict[str, Any]
    redirect_mode: str
    cancellation_url: str | None
    branch: str | None
    account_number: str | None
    subscription_details: dict[str, Any] | None


def parse_json_object(content_type: str | None, raw: bytes) -> dict[str, Any]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise PesapalError(415, "unsupported_media_type", "Content-Type must be application/json")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise PesapalError(400, "invalid_request_body", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise PesapalError(400, "invalid_request_body", "The request body must be a JSON object")
    return body


def _string(body: Mapping[str, Any], name: str, *, label: str | None = None) -> str:
    label = label or name
    value = body.get(name)
    if value is None or value == "":
        raise missing_field(label)
    if not isinstance(value, str):
        raise invalid_field(f"{label} must be a string")
    if not value.strip():
        raise missing_field(label)
    return value


def _optional_string(body: Mapping[str, Any], name: str, *, label: str | None = None) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise invalid_field(f"{label or name} must be a string")
    return value


def _url(body: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = _string(body, name) if required else _optional_string(body, name)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid_field(f"{name} must be an absolute http(s) URL")
    return value


def validate_ipn_registration(body: Mapping[str, Any]) -> IpnRegistration:
    url = _url(body, "url", required=True)
    assert url is not None
    kind = _string(body, "ipn_notification_type").strip().upper()
    if kind not in IPN_TYPES:
        raise invalid_field("ipn_notification_type must be GET or POST")
    return IpnRegistration(url, kind)


def _amount(body: Mapping[str, Any]) -> float:
    value = body.get("amount")
    if value is None:
        raise missing_field("amount")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_field("amount must be a number")
    amount = float(value)
    if not math.isfinite(amount) or amount <= 0:
        raise invalid_field("amount must be greater than zero")
    return amount


def _billing_address(body: Mapping[str, Any]) -> dict[str, Any]:
    value = body.get("billing_address")
    if value is None:
        raise missing_field("billing_address")
    if not isinstance(value, dict):
        raise invalid_field("billing_address must be an object")
    address: dict[str, Any] = {}
    for name in BILLING_FIELDS:
        address[name] = _optional_string(value, name, label=f"billing_address.{name}")
    if not (address["email_address"] or "").strip() and not (address["phone_number"] or "").strip():
        raise PesapalError(
            400,
            "missing_required_field",
            "billing_address.email_address or billing_address.phone_number is required",
        )
    country = address["country_code"]
    if country is not None and not COUNTRY.fullmatch(country):
        raise invalid_field("billing_address.country_code must be a 2-letter ISO country code")
    return address


def validate_order(body: Mapping[str, Any]) -> OrderRequest:
    """Field checks only; the caller checks ``notification_id`` is registered and ``id`` is unused."""
    reference = _string(body, "id")
    if len(reference) > MAX_REFERENCE:
        raise invalid_field(f"id must be at most {MAX_REFERENCE} characters")
    if not REFERENCE_CHARS.fullmatch(reference):
        raise invalid_field("id may only contain letters, digits and - _ . :")
    currency = _string(body, "currency")
    if not CURRENCY.fullmatch(currency):
        raise invalid_field("currency must be a 3-letter ISO currency code")
    amount = _amount(body)
    description = _string(body, "description")
    if len(description) > MAX_DESCRIPTION:
        raise invalid_field(f"description must be at most {MAX_DESCRIPTION} characters")
    callback_url = _url(body, "callback_url", required=True)
    assert callback_url is not None
    notification_id = _string(body, "notification_id")
    redirect_mode = _optional_string(body, "redirect_mode") or "TOP_WINDOW"
    if redirect_mode not in REDIRECT_MODES:
        raise invalid_field("redirect_mode must be TOP_WINDOW or PARENT_WINDOW")
    billing_address = _billing_address(body)
    subscription = body.get("subscription_details")
    if subscription is not None and not isinstance(subscription, dict):
        raise invalid_field("subscription_details must be an object")
    return OrderRequest(
        merchant_reference=reference,
        currency=currency,
        amount=amount,
        description=description,
        callback_url=callback_url,
        notification_id=notification_id,
        billing_address=billing_address,
        redirect_mode=redirect_mode,
        cancellation_url=_url(body, "cancellation_url", required=False),
        branch=_optional_string(body, "branch"),
        account_number=_optional_string(body, "account_number"),
        subscription_details=dict(subscription) if subscription is not None else None,
    )
