from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, BigIntId, UTCDateTime, str_enum, utcnow
from core.tenants.models import Mode


class Customer(Base):
    """The customer book: one row per tenant, mode and phone, cumulative and updated with each payment.

    A business keeps two books: test (pushes on a simulator or sandbox channel) and live (production).
    A test payment never counts in the live book, nor a live one in the test book."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mode", "phone"),
        Index("ix_customers_tenant_mode_paid_total", "tenant_id", "mode", "paid_total"),
        Index("ix_customers_tenant_mode_last_seen", "tenant_id", "mode", "last_seen_at"),
        # Name order is `name, id`; phone is carried (Postgres) so a search's walk of that order reads
        # the index alone (core.customers.service `_page_near_start`).
        Index(
            "ix_customers_tenant_mode_name_id",
            *("tenant_id", "mode", "name", "id"),
            postgresql_include=["phone"],
        ),
        # Search by a name or phone fragment (`ILIKE '%wanj%'`, `LIKE '%72212%'`) in one book: trigrams of
        # name and phone led by the business (btree_gin), one index per mode. Postgres only; SQLite
        # scans. The migration also lets row-level security use them (2026-12-07-1400_customer_search).
        *(
            Index(
                f"ix_customers_search_{mode.value}",
                "tenant_id",
                "name",
                "phone",
                postgresql_using="gin",
                postgresql_ops={"name": "gin_trgm_ops", "phone": "gin_trgm_ops"},
                postgresql_where=text(f"mode = '{mode.value}'"),
            ).ddl_if(dialect="postgresql")
            for mode in Mode
        ),
        CheckConstraint(
            "paid_count >= 0 AND paid_total >= 0 AND paid_count <= requested_count", name="totals_consistent"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # The mode of the payments it counts (core.tenants.models.Mode): every read picks one book.
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode"))
    phone: Mapped[str] = mapped_column(String(12))
    name: Mapped[str | None] = mapped_column(String(100))
    requested_count: Mapped[int] = mapped_column(Integer, default=0)
    requested_total: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_count: Mapped[int] = mapped_column(Integer, default=0)
    paid_total: Mapped[int] = mapped_column(BigInteger, default=0)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
