"""WiFi hotspot providers' routers, plans and vouchers.

A voucher copies its plan's terms when it is issued (price, validity, data, speed): changing or
retiring a plan never changes a voucher already sold.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, encrypted, str_enum, utcnow


class RouterStatus(StrEnum):
    unknown = "unknown"  # never checked
    up = "up"
    down = "down"


class Router(Base):
    """A provider's MikroTik router, reached over the RouterOS API. The password is a Fernet token."""

    __tablename__ = "routers"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer, default=8728)
    username: Mapped[str] = mapped_column(String(64))
    password_enc: Mapped[str] = mapped_column(Text, info=encrypted("router password"))
    tls: Mapped[bool] = mapped_column(default=False)
    hotspot_server: Mapped[str] = mapped_column(String(64), default="hotspot1")
    status: Mapped[RouterStatus] = mapped_column(
        str_enum(RouterStatus, "router_status"), default=RouterStatus.unknown
    )
    identity: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(40))
    uptime: Mapped[str | None] = mapped_column(String(40))
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Sessions logged in on the router at the last reconciliation or check (the router's own count).
    active_sessions: Mapped[int | None] = mapped_column(Integer)
    # Circuit breaker: consecutive failures, and when to try again after too many of them.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    retry_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:  # never the password
        return f"<Router {self.name} {self.host}:{self.port} {self.status}>"


class PlanKind(StrEnum):
    time = "time"  # valid for a wall-clock period from first login
    data = "data"  # a data allowance, valid for a wall-clock period from first login


class Plan(Base):
    __tablename__ = "hotspot_plans"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # Null: sold on all of the provider's routers.
    router_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("routers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(40))
    kind: Mapped[PlanKind] = mapped_column(str_enum(PlanKind, "plan_kind"))
    price: Mapped[int] = mapped_column(Integer)  # whole shillings
    validity_minutes: Mapped[int] = mapped_column(Integer)
    data_mb: Mapped[int | None] = mapped_column(Integer)
    # RouterOS rate-limit "rx/tx" from the router's view: "2M/5M" is 2 Mbit/s up, 5 Mbit/s down.
    rate_limit: Mapped[str | None] = mapped_column(String(40))
    devices: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VoucherStatus(StrEnum):
    issued = "issued"  # sold or printed; not yet on the router
    provisioned = "provisioned"  # the router acknowledged the hotspot user
    active = "active"  # first login seen: the validity clock runs
    expired = "expired"
    revoked = "revoked"


class Voucher(Base):
    __tablename__ = "vouchers"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    router_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("routers.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("hotspot_plans.id", ondelete="SET NULL"))
    code: Mapped[str] = mapped_column(String(16))
    status: Mapped[VoucherStatus] = mapped_column(
        str_enum(VoucherStatus, "voucher_status"), default=VoucherStatus.issued
    )
    # The plan's terms when the voucher was issued.
    plan_name: Mapped[str] = mapped_column(String(40))
    price: Mapped[int] = mapped_column(Integer)
    validity_minutes: Mapped[int] = mapped_column(Integer)
    data_mb: Mapped[int | None] = mapped_column(Integer)
    rate_limit: Mapped[str | None] = mapped_column(String(40))
    devices: Mapped[int] = mapped_column(Integer, default=1)
    # Sold through M-Pesa (one voucher per payment), or printed in a batch.
    payment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payments.id", ondelete="SET NULL"), unique=True
    )
    phone: Mapped[str | None] = mapped_column(String(12), index=True)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    provisioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    bytes_used: Mapped[int | None] = mapped_column(BigInteger)

    @property
    def profile_name(self) -> str:
        """The RouterOS user profile carrying the speed and device limits. Named after those terms,
        not the plan: a plan whose speed changes gets a new profile, and vouchers sold before keep
        theirs."""
        return profile_name(self.rate_limit, self.devices)


def profile_name(rate_limit: str | None, devices: int) -> str:
    terms = f"{rate_limit or 'unlimited'}|{devices}"
    return "lp-" + hashlib.sha256(terms.encode()).hexdigest()[:10]


class VoucherOrder(Base):
    """A buyer's purchase in flight: what the M-Pesa payment is for, and where to log them in. The
    voucher is issued when the payment succeeds (core.hotspot.orders), exactly once per payment."""

    __tablename__ = "voucher_orders"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), unique=True)
    plan_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("hotspot_plans.id", ondelete="SET NULL"))
    router_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("routers.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(12))
    mac: Mapped[str | None] = mapped_column(String(17))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    voucher_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("vouchers.id", ondelete="SET NULL"))
    # The plan's terms when the buyer was asked to pay: the voucher gets these even if the provider
    # edits or deletes the plan before M-Pesa answers.
    plan_name: Mapped[str] = mapped_column(String(40), server_default="")
    price: Mapped[int] = mapped_column(Integer, server_default="0")
    validity_minutes: Mapped[int] = mapped_column(Integer, server_default="0")
    data_mb: Mapped[int | None] = mapped_column(Integer)
    rate_limit: Mapped[str | None] = mapped_column(String(40))
    devices: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
