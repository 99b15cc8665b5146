"""One customer and their latest payment requests: what an agent (or a support screen) asks first
about a phone number."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.customers.schemas import CustomerOut
from core.payments.schemas import PaymentOut
from core.tenants.models import Mode

RECENT = 10


class CustomerSummary(BaseModel):
    customer: CustomerOut
    mode: Mode = Field(description="The book this customer is in: test or live")
    recent_payments: list[PaymentOut] = Field(
        description=f"Their latest payment requests, newest first (at most {RECENT})"
    )
