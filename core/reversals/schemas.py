from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from core.reversals.models import ReversalStatus
from core.tenants.models import Mode


class ReversalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    payment_id: uuid.UUID
    mode: Mode
    status: ReversalStatus
    amount: int = Field(description="Whole shillings: the payment's whole amount")
    receipt: str = Field(description="The M-Pesa receipt of the payment being reversed")
    reason: str
    confirm_expires_at: datetime | None = Field(
        description="While unconfirmed: until when the code sent to the owner may be typed"
    )
    confirmed_at: datetime | None
    reversal_receipt: str | None = Field(description="M-Pesa's transaction id of the reversal")
    result_code: str | None
    result_desc: str | None
    created_at: datetime
    finished_at: datetime | None


class ReversalStarted(BaseModel):
    reversal: ReversalOut
    code_sent_to: list[str] = Field(description="Where the confirmation code went (masked)")
