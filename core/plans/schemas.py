"""What the API, the panel, the bot and the CLI get back about plans."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PlanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    name: str
    description: str | None
    monthly_fee_cents: int
    live_pushes_per_month: int | None = Field(description="per calendar month in Nairobi; null: no limit")
    pushes_per_key_per_minute: int | None = Field(description="null: the platform's default (120)")
    is_default: bool
    public: bool


class PlanStatusOut(BaseModel):
    chosen: PlanOut = Field(description="the plan the business chose")
    effective: PlanOut = Field(description="the plan that applies now: the default one while a fee is unpaid")
    unpaid: bool
    paid_until: datetime | None
    month: str = Field(description='the Nairobi calendar month counted, e.g. "2026-12"')
    live_pushes: int = Field(description="live payment requests started this month")
    remaining: int | None = Field(description="live payment requests left this month; null: no limit")
    resets_at: datetime = Field(description="00:00 Nairobi on the 1st of next month")
    next_payment_cents: int | None = Field(
        description="what paying the chosen plan now costs (the rest of this month, or next month once "
        "this one is paid); null for a free plan"
    )
    next_mpesa_amount: int | None = Field(
        default=None, description="what paying it by M-Pesa prompts for: whole shillings, rounded up"
    )


class PlanPaid(BaseModel):
    status: PlanStatusOut
    amount_cents: int
    period_start: datetime
    period_end: datetime


class PlanIn(BaseModel):
    """An admin's plan (create, or change by code)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    code: str = Field(min_length=2, max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1, max_length=80)
    description: str | None = Field(default=None, max_length=500)
    monthly_fee_cents: int = Field(ge=0, le=100_000_000)
    live_pushes_per_month: int | None = Field(default=None, ge=0, le=100_000_000)
    pushes_per_key_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    public: bool = True
