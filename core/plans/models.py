"""API plans: what a business may push and how fast, and what it pays for that each month.

Not the hotspot providers' WiFi subscription (core.billing.subscriptions, paid through Pesapal): a plan
limits *live* STK pushes, whoever starts them (API, panel, bot, USSD, the captive portal). Test-mode
pushes never count (they cannot move money)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, utcnow


class ApiPlan(Base):
    __tablename__ = "plans"
    __table_args__ = (
        # Exactly one plan is the default ("Free"): new businesses start on it and an unpaid plan falls
        # back to it.
        Index("uq_plans_default", "is_default", unique=True, postgresql_where=text("is_default"),
              sqlite_where=text("is_default")),
    )  # fmt: skip

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(40), unique=True)  # "free", "growth": what CLI and API name
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str | None] = mapped_column(Text)
    monthly_fee_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    # Live pushes a business may start per calendar month in Nairobi; null: no limit.
    live_pushes_per_month: Mapped[int | None] = mapped_column(Integer)
    # STK pushes one API key may start per minute (the moving-window flood limit); null: the platform's
    # STK_PUSHES_PER_KEY_PER_MINUTE.
    pushes_per_key_per_minute: Mapped[int | None] = mapped_column(Integer)
    is_default: Mapped[bool] = mapped_column(default=False)
    # Offered to owners to choose; a hidden plan (e.g. "Founding") is assigned by an admin only.
    public: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<ApiPlan {self.code}>"


class PlanUsage(Base):
    """Live pushes a business started in one Nairobi calendar month ("2026-12"), counted in the
    transaction that records each push, so the count is exact and a refused push counts nothing."""

    __tablename__ = "plan_usage"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    live_pushes: Mapped[int] = mapped_column(Integer, default=0)
