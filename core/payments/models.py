from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, BigIntId, UTCDateTime, str_enum, utcnow
from core.tenants.models import Mode


class PaymentStatus(StrEnum):
    pending = "pending"
    success = "success"
    failed = "failed"
    cancelled = "cancelled"
    timeout = "timeout"
    expired = "expired"
    # A success later reversed through Daraja (core.reversals): set only by the reversal's result.
    reversed = "reversed"

    @property
    def is_final(self) -> bool:
        return self is not PaymentStatus.pending


class PaymentSource(StrEnum):
    api = "api"
    telegram = "telegram"
    ussd = "ussd"
    portal = "portal"
    onboarding = "onboarding"
    topup = "topup"
    # Sent by the customer straight to the till or paybill (C2B confirmation), with no prompt.
    c2b = "c2b"


# The final states in which no money moved.
NOT_PAID = (PaymentStatus.failed, PaymentStatus.cancelled, PaymentStatus.timeout, PaymentStatus.expired)

# Pushes that are not a merchant collecting from a customer stay out of the customer book. A C2B payment
# is a customer paying the business, so it counts everywhere a push does (book, commission, dashboards,
# webhooks); core.c2b keeps a payer whose number came masked out of the book (core/c2b/confirmations.py).
CUSTOMER_SOURCES = frozenset(
    {PaymentSource.api, PaymentSource.telegram, PaymentSource.ussd, PaymentSource.portal, PaymentSource.c2b}
)


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        # An Idempotency-Key is per mode: test and live payments never answer for each other.
        UniqueConstraint("tenant_id", "mode", "idempotency_key"),
        Index("ix_payments_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_payments_tenant_phone", "tenant_id", "phone"),
        Index("ix_payments_status_next_check", "status", "next_check_at"),
        # The admin's all-tenant transaction list pages newest first, optionally by status.
        Index("ix_payments_created", "created_at", "id"),
        Index("ix_payments_status_created", "status", "created_at", "id"),
        # The admin's "last digits" phone search is a range on reverse(phone); SQLite has no reverse().
        Index("ix_payments_phone_reversed", func.reverse(text("phone"))).ddl_if(dialect="postgresql"),
        # The database refuses what the service would never write: a second line of defence.
        CheckConstraint("amount >= 1", name="amount_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mpesa_channels.id", ondelete="CASCADE"))
    # The channel's mode when the push was made: test payments are listed, exported and announced
    # apart from live ones and never earn commission.
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode"), default=Mode.live)
    # The app whose key started it (API pushes), and the URL that app asked to be told at, besides
    # its registered endpoints (a habit from Daraja's own CallBackURL; only hosts the app allows).
    app_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("apps.id", ondelete="SET NULL"))
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    initiated_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    source: Mapped[PaymentSource] = mapped_column(str_enum(PaymentSource, "payment_source"))
    status: Mapped[PaymentStatus] = mapped_column(
        str_enum(PaymentStatus, "payment_status"), default=PaymentStatus.pending
    )
    amount: Mapped[int] = mapped_column(Integer)  # whole shillings
    phone: Mapped[str] = mapped_column(String(12))
    customer_name: Mapped[str | None] = mapped_column(String(100))
    account_reference: Mapped[str] = mapped_column(String(12))
    description: Mapped[str] = mapped_column(String(13))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # The X-Request-ID of the request that started it: links the admin's error log to the server logs.
    request_id: Mapped[str | None] = mapped_column(String(64))
    merchant_request_id: Mapped[str | None] = mapped_column(String(64))
    checkout_request_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    receipt: Mapped[str | None] = mapped_column(String(20), unique=True)
    result_code: Mapped[str | None] = mapped_column(String(32))
    result_desc: Mapped[str | None] = mapped_column(Text)
    # Set when a callback disagrees with what we asked for: the payment is recorded, not trusted.
    flag: Mapped[str | None] = mapped_column(Text)
    paid_amount: Mapped[int | None] = mapped_column(Integer)
    # Commission: the rate in force when the payment was created, the amount it comes to, and the
    # part held on the wallet until the payment is final.
    commission_bps: Mapped[int | None] = mapped_column(Integer)
    commission_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_phone: Mapped[str | None] = mapped_column(String(20))
    transaction_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The chat message that shows this payment's live status (pushes started from the bot): it is
    # edited when the payment becomes final.
    status_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    status_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # Set when the push is handed to Daraja: a push job delivered twice must not prompt twice.
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Send the final result by SMS to this phone (pushes started from the USSD menu).
    notify_phone: Mapped[str | None] = mapped_column(String(12))
    # Reconciliation: when to ask Daraja next, and how often we already did.
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    query_attempts: Mapped[int] = mapped_column(Integer, default=0)

    def __repr__(self) -> str:
        return f"<Payment {self.id} {self.status} {self.amount}>"


class CallbackInbox(Base):
    """Every callback body exactly as received, stored before we answer 200."""

    __tablename__ = "callback_inbox"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mpesa_channels.id", ondelete="CASCADE"))
    # Which Daraja answer this is, by the URL it came to (core.daraja_inbox.CallbackKind): "stk" for
    # an STK callback, else a Result or QueueTimeOut of a payout, a lookup or a reversal, or a C2B
    # confirmation.
    kind: Mapped[str] = mapped_column(String(24), default="stk", server_default="stk")
    checkout_request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # What an asynchronous answer names (its ConversationID; a C2B confirmation's TransID).
    reference: Mapped[str | None] = mapped_column(String(64), index=True)
    payload: Mapped[str] = mapped_column(Text)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
