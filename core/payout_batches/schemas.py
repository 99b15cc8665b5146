from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from core.payouts.models import BatchStatus, PayoutCommand
from core.tenants.models import Mode


class BatchProgress(BaseModel):
    queued: int = Field(description="Rows waiting their turn (or the paused batch)")
    pending: int = Field(description="Rows with M-Pesa, waiting for the result")
    paid: int
    failed: int
    timeout: int = Field(description="Rows M-Pesa never answered: never sent again, check the statement")
    paid_kes: int
    left_kes: int = Field(description="Whole shillings not paid yet (queued and pending rows)")


class BatchOut(BaseModel):
    id: uuid.UUID
    status: BatchStatus
    mode: Mode
    command: PayoutCommand
    channel_id: uuid.UUID
    filename: str
    rows_total: int = Field(description="Rows in the file, the header and empty rows left out")
    rows_valid: int = Field(description="Rows that can be paid, duplicates included")
    amount_total: int = Field(description="Whole shillings of the rows that can be paid")
    duplicates: int = Field(
        description="Payable rows flagged as duplicates (in the file or of the last 24 h)"
    )
    rows_to_pay: int = Field(
        description="What approval pays: the payable rows, less duplicates unless included"
    )
    amount_to_pay: int = Field(description="Whole shillings of rows_to_pay")
    problems: list[dict[str, Any]] = Field(
        description="[{row, field, reason, duplicate}]: refused rows, and duplicates left out unless included"
    )
    include_duplicates: bool
    pause_reason: str | None
    progress: BatchProgress | None = Field(description="Once approved")
    created_at: datetime
    approved_at: datetime | None
    finished_at: datetime | None
