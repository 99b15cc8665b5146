"""Reversals of a received payment (STK or C2B) through Daraja. The payment becomes `reversed` only
when the reversal's result says so; the customer book and the commission are corrected then, by a
compensating entry, never by editing what was recorded."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, str_enum, utcnow
from core.tenants.models import Mode


class ReversalStatus(StrEnum):
    # Asked for, waiting for the owner's second factor (a code sent by email and Telegram); nothing
    # has gone to M-Pesa. Becomes `cancelled` when the code expires or another reversal is asked.
    unconfirmed = "unconfirmed"
    pending = "pending"  # confirmed: sent (or being sent) to M-Pesa, waiting for its result
    success = "success"
    failed = "failed"
    # No result came: M-Pesa was asked, and only its statement can tell. Never sent again by us.
    timeout = "timeout"
    cancelled = "cancelled"

    @property
    def is_final(self) -> bool:
        return self not in (ReversalStatus.unconfirmed, ReversalStatus.pending)


class Reversal(Base):
    __tablename__ = "reversals"
    __table_args__ = (
        # One reversal at a time per payment, and never another once one succeeded.
        Index(
            "uq_reversals_open_or_done",
            "payment_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'success')"),
            sqlite_where=text("status IN ('pending', 'success')"),
        ),
        Index("ix_reversals_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mpesa_channels.id", ondelete="CASCADE"))
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode"))
    status: Mapped[ReversalStatus] = mapped_column(str_enum(ReversalStatus, "reversal_status"))
    amount: Mapped[int] = mapped_column(Integer)  # whole shillings: the payment's
    receipt: Mapped[str] = mapped_column(String(20))  # the payment's, the one reversed
    reason: Mapped[str] = mapped_column(Text)
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    conversation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    originator_conversation_id: Mapped[str | None] = mapped_column(String(64))
    reversal_receipt: Mapped[str | None] = mapped_column(String(20))  # the reversal's TransactionID
    result_code: Mapped[str | None] = mapped_column(String(32))
    result_desc: Mapped[str | None] = mapped_column(Text)
    # The second factor: the code's hash, until when it may be typed, and how many wrong tries.
    confirm_code_hash: Mapped[str | None] = mapped_column(String(64))
    confirm_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirm_attempts: Mapped[int] = mapped_column(Integer, default=0)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # M-Pesa accepted the request
    send_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
