from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from core.money import amount_schema, parse_shillings
from core.payments.models import PaymentSource, PaymentStatus
from core.phones import PHONE_SCHEMA, normalize_msisdn
from core.tenants.models import Mode

# Daraja shows AccountReference in the customer's prompt and rejects odd characters silently
# (refs §14.8), so keep it to letters, digits, spaces and a few separators.
_REFERENCE = re.compile(r"^[A-Za-z0-9 _\-./#]+$")

PhoneField = Annotated[
    str, BeforeValidator(lambda v: normalize_msisdn(v)), Field(json_schema_extra=PHONE_SCHEMA)
]
AmountField = Annotated[
    int, BeforeValidator(lambda v: parse_shillings(v)), Field(json_schema_extra=amount_schema)
]
# The documented shape of reference and description (checked by clean_reference, after trimming).
_REFERENCE_SCHEMA = {"pattern": r"^[A-Za-z0-9 _\-./#]*$"}


def clean_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    if len(value) > 100:
        raise ValueError("Customer name must be at most 100 characters.")
    return value or None


def clean_reference(value: str | None, *, field: str, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise ValueError(f"{field} must be at most {limit} characters (an M-Pesa limit).")
    if not _REFERENCE.match(value):
        raise ValueError(f"{field} may only contain letters, digits, spaces and - _ . / #")
    return value


class StkPushIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: PhoneField = Field(description="Customer phone: 07…, 01…, +254… or 254…", examples=["0722000111"])
    amount: AmountField = Field(description="Whole shillings, 1 to 250 000", examples=[150])
    name: str | None = Field(
        default=None, description="Customer name for the customer book", json_schema_extra={"maxLength": 100}
    )
    reference: str | None = Field(
        default=None,
        description="Account reference shown in the prompt (≤ 12)",
        json_schema_extra={"maxLength": 12, **_REFERENCE_SCHEMA},
    )
    description: str | None = Field(
        default=None,
        description="Transaction description (≤ 13)",
        json_schema_extra={"maxLength": 13, **_REFERENCE_SCHEMA},
    )

    callback_url: str | None = Field(
        default=None,
        description="Also send this payment's events here (https, a host the app allows in callback_hosts)",
        json_schema_extra={"maxLength": 2048},
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return clean_name(v)

    @field_validator("reference")
    @classmethod
    def _reference(cls, v: str | None) -> str | None:
        return clean_reference(v, field="reference", limit=12)

    @field_validator("description")
    @classmethod
    def _description(cls, v: str | None) -> str | None:
        return clean_reference(v, field="description", limit=13)


class PaymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: PaymentStatus
    amount: int
    phone: str
    customer_name: str | None
    account_reference: str
    description: str
    source: PaymentSource
    mode: Mode = Field(
        default=Mode.live,
        description="test: through a simulator or sandbox channel, never real money; live: production",
    )
    # Every payment row has one; optional so a PaymentOut built by hand (bench/webhook_delivery.py)
    # need not name one. Webhook payloads carry it too (core.webhooks.events.payment_data).
    channel_id: uuid.UUID | None = Field(
        default=None,
        description="The business's M-Pesa channel (till or paybill) it went through (GET /api/channels); "
        "a wallet top-up goes through the platform's own channel, which is not the business's",
    )
    checkout_request_id: str | None
    merchant_request_id: str | None
    receipt: str | None
    result_code: str | None
    result_desc: str | None
    flag: str | None
    created_at: datetime
    completed_at: datetime | None


class PaymentPage(BaseModel):
    items: list[PaymentOut]
    next_cursor: str | None
    total: int | None = None
