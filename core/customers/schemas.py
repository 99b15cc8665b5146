from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.tenants.models import Mode


class CustomerSort(StrEnum):
    name = "name"
    phone = "phone"
    requested_count = "requested_count"
    requested_total = "requested_total"
    paid_count = "paid_count"
    paid_total = "paid_total"
    first_seen_at = "first_seen_at"
    last_seen_at = "last_seen_at"


class CustomerQuery(BaseModel):
    """Search, sort, filter and page the customer book.

    `channel_id` picks whom to show, never what they count: the book is one per business (and mode),
    so a customer of two tills shows their whole book's figures under either till."""

    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(default=None, max_length=100, description="Name or phone fragment")
    sort: CustomerSort = CustomerSort.last_seen_at
    desc: bool = True
    min_paid: int | None = Field(default=None, ge=0)
    max_paid: int | None = Field(default=None, ge=0)
    seen_from: datetime | None = None
    seen_to: datetime | None = None
    has_paid: bool | None = None
    channel_id: uuid.UUID | None = Field(
        default=None,
        description="Only customers with at least one payment request (any outcome) through this channel "
        "of the business (GET /api/channels), in the book's mode. Their figures stay the whole book's: "
        "one customer book per business, the channel only picks whom to show.",
    )
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=50, ge=1, le=500)

    @field_validator("q")
    @classmethod
    def _q(cls, v: str | None) -> str | None:
        v = (v or "").strip()
        return v or None

    @model_validator(mode="after")
    def _ranges(self) -> CustomerQuery:
        if self.min_paid is not None and self.max_paid is not None and self.min_paid > self.max_paid:
            raise ValueError("min_paid is greater than max_paid")
        if self.seen_from and self.seen_to and self.seen_from > self.seen_to:
            raise ValueError("seen_from is after seen_to")
        return self


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    phone: str
    name: str | None
    requested_count: int
    requested_total: int
    paid_count: int
    paid_total: int
    first_seen_at: datetime
    last_seen_at: datetime
    last_paid_at: datetime | None


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    page: int
    per_page: int
    total: int = Field(
        description="How many customers match. Counting stops at 10 000, at 2 000 with a search text `q` "
        "(or at the end of this page, when that is further): past it `total_capped` is true and `total` "
        "is a lower bound."
    )
    total_capped: bool = Field(
        default=False,
        description="True when counting stopped: more customers match than `total`, so there is at "
        "least one more page after this one. A search by a fragment the database's statistics expect "
        "to match over 10 000 customers is not counted at all (the last page always is). False: "
        "`total` is exact.",
    )
    mode: Mode = Field(
        description="The book these customers are from: test (simulator or sandbox payments) or live "
        "(production). An API key reads its own mode's book; a person the business's current mode's."
    )
