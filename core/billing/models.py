from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, BigIntId, UTCDateTime, str_enum, utcnow


class PlatformSetting(Base):
    """Platform-wide values an admin changes at run time (the default commission rate)."""

    __tablename__ = "platform_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class InvoiceStatus(StrEnum):
    issued = "issued"
    paid = "paid"
    void = "void"


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        # One invoice per tenant and period: issuing twice for a period is a no-op.
        UniqueConstraint("tenant_id", "period_start", "period_end"),
        Index("ix_invoices_status_due", "status", "due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="RESTRICT"), index=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    line_count: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[InvoiceStatus] = mapped_column(
        str_enum(InvoiceStatus, "invoice_status"), default=InvoiceStatus.issued
    )
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InvoiceLine(Base):
    """One accrued commission transfer on one invoice. UNIQUE(transfer_id): never billed twice."""

    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    transfer_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_transfers.id", ondelete="RESTRICT"), unique=True
    )
    amount_cents: Mapped[int] = mapped_column(BigInteger)


class SubscriptionPeriod(StrEnum):
    monthly = "monthly"
    yearly = "yearly"


class SubscriptionPlan(Base):
    """What hotspot providers pay the platform (through Pesapal) instead of commission; set by the
    platform admin."""

    __tablename__ = "subscription_plans"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    period: Mapped[SubscriptionPeriod] = mapped_column(str_enum(SubscriptionPeriod, "subscription_period"))
    price: Mapped[int] = mapped_column(BigInteger)  # whole shillings
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubscriptionOrderStatus(StrEnum):
    pending = "pending"
    completed = "completed"
    failed = "failed"
    reversed = "reversed"


class SubscriptionOrder(Base):
    """One Pesapal order for one subscription period. Its extension is applied once (keyed by the
    order) and taken back if Pesapal reverses the payment."""

    __tablename__ = "subscription_orders"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscription_plans.id", ondelete="RESTRICT"))
    merchant_reference: Mapped[str] = mapped_column(String(50), unique=True)
    order_tracking_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    redirect_url: Mapped[str | None] = mapped_column(String(500))
    amount: Mapped[int] = mapped_column(BigInteger)
    period: Mapped[SubscriptionPeriod] = mapped_column(str_enum(SubscriptionPeriod, "subscription_period"))
    status: Mapped[SubscriptionOrderStatus] = mapped_column(
        str_enum(SubscriptionOrderStatus, "subscription_order_status"),
        default=SubscriptionOrderStatus.pending,
    )
    confirmation_code: Mapped[str | None] = mapped_column(String(64))
    # The stretch of time this order paid for, once applied.
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
