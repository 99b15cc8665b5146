"""Lookups at the edges: what is asked, and what the API shows of an answer and of a balance."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.lookups.models import LookupKind, LookupStatus
from core.tenants.models import ChannelKind, Environment, Mode


class LookupOut(BaseModel):
    """One question asked of M-Pesa and, once it came, its answer."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: LookupKind = Field(description="balance or status")
    status: LookupStatus = Field(
        description="pending (asked, no answer yet), done, failed (refused: result_desc says why) or "
        "timeout (no answer)"
    )
    channel_id: uuid.UUID
    mode: Mode
    transaction_id: str | None = Field(
        description="What a status lookup asked about: a receipt, or a payout's OriginatorConversationID"
    )
    payment_id: uuid.UUID | None = Field(description="The payment a status lookup is about")
    payout_id: uuid.UUID | None = Field(description="The payout a status lookup is about (the reconciler's)")
    result_code: str | None
    result_desc: str | None
    result: dict[str, Any] | None = Field(
        description="The answer: a balance's accounts (cents), or a transaction's status, receipt, amount "
        "(cents), parties and times"
    )
    working_cents: int | None = Field(description="A balance's Working account")
    utility_cents: int | None = Field(description="A balance's Utility account, which B2C payouts draw on")
    answered_at: datetime | None = Field(description="When M-Pesa completed it")
    created_at: datetime
    finished_at: datetime | None


class AccountOut(BaseModel):
    name: str
    currency: str
    available_cents: int


class ChannelBalanceOut(BaseModel):
    channel_id: uuid.UUID
    channel_name: str
    kind: ChannelKind
    environment: Environment
    mode: Mode
    short_code: str
    initiator_verified: bool
    utility_cents: int | None = Field(description="The latest balance's Utility account (B2C pays from it)")
    working_cents: int | None
    accounts: list[AccountOut] = Field(description="Every account of the latest balance")
    as_of: datetime | None = Field(description="When M-Pesa gave the latest balance; null before the first")
    lookup_id: uuid.UUID | None = Field(description="The lookup that gave it")
    refreshing: bool = Field(description="A newer balance has been asked for and not answered yet")
    last_error: str | None = Field(description="Why the newest balance question failed, when it did")


class BalancesOut(BaseModel):
    channels: list[ChannelBalanceOut]


class BalanceRefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_id: uuid.UUID | None = Field(
        default=None, description="One channel; default: every channel with an M-Pesa initiator"
    )


class LookupsOut(BaseModel):
    lookups: list[LookupOut]


class StatusLookupIn(BaseModel):
    """Ask M-Pesa how a transaction ended: by its receipt, or a payment's (which must have one)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    receipt: str | None = Field(
        default=None, description="The 10-character M-Pesa receipt", pattern=r"^[A-Za-z0-9]{10}$"
    )
    payment_id: uuid.UUID | None = Field(
        default=None, description="A payment of this business (with a receipt)"
    )
    channel_id: uuid.UUID | None = Field(
        default=None,
        description="The channel to ask through (it needs an initiator); default: the payment's, or the "
        "business's only channel with an initiator",
    )

    @model_validator(mode="after")
    def _one(self) -> StatusLookupIn:
        if (self.receipt is None) == (self.payment_id is None):
            raise ValueError("give either receipt or payment_id")
        if self.receipt is not None:
            self.receipt = self.receipt.upper()
        return self
