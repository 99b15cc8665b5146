from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from core.billing.models import InvoiceStatus
from core.money import amount_schema
from core.phones import PHONE_SCHEMA
from core.tenants.models import BillingMode, InvoicePeriod


class WalletOut(BaseModel):
    balance_cents: int
    reserved_cents: int = Field(description="held for pushes still in flight")
    available_cents: int = Field(description="balance − reserved − floor: what new pushes can use")
    floor_cents: int
    low_balance_threshold_cents: int
    billing_mode: BillingMode
    commission_bps: int
    commission_percent: str
    month_to_date_commission_cents: int
    owed_on_invoice_cents: int = Field(description="commission accrued and not yet paid")
    invoice_period: InvoicePeriod
    billing_hold: str | None
    business_phone: str = Field(description="the phone a top-up prompts when none is given")


class TopupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int = Field(description="Whole shillings", json_schema_extra=amount_schema)
    phone: str | None = Field(
        default=None, description="Defaults to the business phone", json_schema_extra=PHONE_SCHEMA
    )


class WalletSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    low_balance_threshold: int | None = Field(default=None, ge=0, le=10_000_000, description="KES")
    invoice_period: InvoicePeriod | None = None


class PostingOut(BaseModel):
    id: int
    created_at: datetime
    kind: str
    cause_type: str
    cause_id: str
    payment_id: uuid.UUID | None
    amount_cents: int
    debit: str
    credit: str
    wallet_effect_cents: int = Field(description="+ credited to the wallet, − taken from it, 0 elsewhere")
    memo: str | None


class PostingPage(BaseModel):
    items: list[PostingOut]
    next_cursor: int | None


class InvoiceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    number: str
    period_start: datetime
    period_end: datetime
    total_cents: int
    line_count: int
    status: InvoiceStatus
    issued_at: datetime
    due_at: datetime
    paid_at: datetime | None


class InvoiceLineOut(BaseModel):
    created_at: datetime
    phone: str | None
    amount: int | None
    receipt: str | None
    commission_bps: int | None
    commission_cents: int


class InvoiceDetail(InvoiceOut):
    lines: list[InvoiceLineOut]
