"""Typed inputs and outputs of the Daraja client."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

TransactionType = Literal["CustomerPayBillOnline", "CustomerBuyGoodsOnline"]

# 2541… numbers are real Safaricom lines (011x range), so a 2547-only pattern would refuse paying customers.
Msisdn = Annotated[str, StringConstraints(pattern=r"^254[17]\d{8}$")]
ShortCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{5,8}$")]


def _http_url(value: str) -> str:
    value = value.strip()
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value


class DarajaCredentials(BaseModel):
    """One business's Daraja app plus the Till or Paybill it collects into.

    For a Paybill, ``business_short_code`` and ``party_b`` are both the paybill. For a Till, the short code is
    the Head Office/Store number (it is what the passkey belongs to) and ``party_b`` is the till itself.
    """

    model_config = ConfigDict(frozen=True)

    base_url: str
    consumer_key: str = Field(min_length=1)
    consumer_secret: SecretStr
    passkey: SecretStr
    business_short_code: ShortCode
    party_b: ShortCode
    transaction_type: TransactionType
    # Test or live (the channel's mode) and where production is. With both set the client refuses, on
    # every call, a test request bound for the production host and a live one bound anywhere else: the
    # base URL is chosen from the channel's environment, and this is the wall behind that choice.
    mode: Literal["test", "live"] | None = None
    production_url: str | None = None

    @field_validator("base_url")
    @classmethod
    def _strip_base_url(cls, value: str) -> str:
        # Trailing whitespace in the OAuth URL makes Daraja answer 400.008.02, and a trailing slash doubles up
        # with our paths; both are easy to paste in from a portal.
        return _http_url(value).rstrip("/")


class StkPushRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    phone: Msisdn
    # Strict so that a float or a "10.00" string fails here rather than as "Invalid Amount" from Daraja.
    amount: int = Field(strict=True, ge=1, le=250_000)
    callback_url: str
    account_reference: str = Field(min_length=1, max_length=12)
    description: str = Field(min_length=1, max_length=13)

    @field_validator("callback_url")
    @classmethod
    def _check_callback_url(cls, value: str) -> str:
        return _http_url(value)


class StkPushAccepted(BaseModel):
    """Daraja accepted the push for processing; the payment itself is decided later (callback or query)."""

    model_config = ConfigDict(frozen=True)

    merchant_request_id: str
    checkout_request_id: str
    response_code: str
    response_description: str
    customer_message: str | None = None


class StkQueryResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    pending: bool
    result_code: str | None = None
    result_desc: str | None = None


class StkCallback(BaseModel):
    model_config = ConfigDict(frozen=True)

    merchant_request_id: str
    checkout_request_id: str
    result_code: str
    result_desc: str
    amount: int | None = None
    receipt: str | None = None
    transaction_date: datetime | None = None
    phone: str | None = None
    balance: str | None = None
