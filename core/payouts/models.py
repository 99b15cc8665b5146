"""Money out: B2C payouts (one each) and the bulk batches that group them.

A payout's OriginatorConversationID is minted once, when its row is written, and never again: it is
Daraja's only idempotency key for B2C, so a POST whose answer was lost is sent again with the same id
(Daraja refuses a duplicate, it never pays twice), and a new id for the same payout is never made.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, str_enum, utcnow
from core.tenants.models import Mode


class PayoutStatus(StrEnum):
    queued = "queued"  # a batch row waiting its turn (or its paused batch)
    pending = "pending"  # being sent, or accepted by Daraja and waiting for the result
    success = "success"
    failed = "failed"
    # Neither the result nor the status queries told what happened: never sent again by us; the
    # business checks its M-Pesa statement (core.payouts.reconcile).
    timeout = "timeout"

    @property
    def is_final(self) -> bool:
        return self in (PayoutStatus.success, PayoutStatus.failed, PayoutStatus.timeout)


class PayoutCommand(StrEnum):
    """Daraja's B2C CommandID."""

    business = "BusinessPayment"
    salary = "SalaryPayment"
    promotion = "PromotionPayment"


class PayoutSource(StrEnum):
    api = "api"
    telegram = "telegram"
    ussd = "ussd"
    panel = "panel"
    cli = "cli"
    mcp = "mcp"


class BatchStatus(StrEnum):
    draft = "draft"  # uploaded and checked: the preview, waiting for approval
    running = "running"
    paused = "paused"  # by itself (insufficient funds) or by a person; resumes from where it was
    done = "done"
    cancelled = "cancelled"  # a draft thrown away, or the queued rows of a paused batch dropped


class PayoutBatch(Base):
    __tablename__ = "payout_batches"
    __table_args__ = (Index("ix_payout_batches_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mpesa_channels.id", ondelete="CASCADE"))
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode"))
    command: Mapped[PayoutCommand] = mapped_column(str_enum(PayoutCommand, "payout_command"))
    status: Mapped[BatchStatus] = mapped_column(
        str_enum(BatchStatus, "batch_status"), default=BatchStatus.draft
    )
    filename: Mapped[str] = mapped_column(String(200))
    # The rows the preview refused or flagged: [{"row": 7, "field": "phone", "reason": "…"}], as shown.
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The payable rows of the preview, [{"row", "phone", "amount", "name", "reference"}]: approval turns
    # them into queued payouts (core.payout_batches).
    rows: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    include_duplicates: Mapped[bool] = mapped_column(default=False)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_valid: Mapped[int] = mapped_column(Integer, default=0)
    amount_total: Mapped[int] = mapped_column(BigInteger, default=0)  # whole shillings, valid rows
    pause_reason: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    approved_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The bot message that shows the batch's progress and edits itself.
    status_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    status_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Payout(Base):
    __tablename__ = "payouts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mode", "idempotency_key"),
        UniqueConstraint("batch_id", "row_number"),
        Index("ix_payouts_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_payouts_status_next_check", "status", "next_check_at"),
        Index("ix_payouts_batch_status", "batch_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mpesa_channels.id", ondelete="CASCADE"))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payout_batches.id", ondelete="CASCADE"))
    row_number: Mapped[int | None] = mapped_column(Integer)  # the batch file's row
    app_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("apps.id", ondelete="SET NULL"))
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode"))
    source: Mapped[PayoutSource] = mapped_column(str_enum(PayoutSource, "payout_source"))
    command: Mapped[PayoutCommand] = mapped_column(str_enum(PayoutCommand, "payout_command"))
    status: Mapped[PayoutStatus] = mapped_column(str_enum(PayoutStatus, "payout_status"))
    phone: Mapped[str] = mapped_column(String(12))
    amount: Mapped[int] = mapped_column(Integer)  # whole shillings
    name: Mapped[str | None] = mapped_column(String(100))  # who the business meant to pay
    reference: Mapped[str | None] = mapped_column(String(100))  # sent as Remarks
    occasion: Mapped[str | None] = mapped_column(String(100))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    initiated_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    originator_conversation_id: Mapped[str] = mapped_column(String(64), unique=True)
    conversation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    send_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the B2C request was last POSTed (attempt `send_attempts`): a Transaction Status answer of
    # "no such transaction" is trusted only well after it (core.payouts.reconcile.RESULT_WINDOW).
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # Daraja accepted it
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when to ask Transaction Status
    status_checks: Mapped[int] = mapped_column(Integer, default=0)
    receipt: Mapped[str | None] = mapped_column(String(20), unique=True)
    recipient_name: Mapped[str | None] = mapped_column(String(120))  # ReceiverPartyPublicName
    recipient_registered: Mapped[bool | None] = mapped_column()
    # The B2C accounts after this payout, as the result said (cents).
    utility_balance_cents: Mapped[int | None] = mapped_column(BigInteger)
    working_balance_cents: Mapped[int | None] = mapped_column(BigInteger)
    charges_paid_balance_cents: Mapped[int | None] = mapped_column(BigInteger)
    result_code: Mapped[str | None] = mapped_column(String(32))
    result_desc: Mapped[str | None] = mapped_column(Text)
    transaction_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when it became final here

    def __repr__(self) -> str:
        return f"<Payout {self.id} {self.status} {self.amount}>"
