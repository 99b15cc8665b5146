from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, BigIntId, UTCDateTime, str_enum
from core.tenants.models import Mode


class ApiRequest(Base):
    """One /api request by a known caller: an API key, a login token, or a refused key whose prefix
    names one of the business's keys. Written in batches by `core.usage.recorder`, kept
    USAGE_RETENTION_DAYS.

    No foreign key to the key or the app: a log row outlives them, and the batched insert must never
    fail because a key was deleted in the second before it."""

    __tablename__ = "api_requests"
    __table_args__ = (
        Index("ix_api_requests_tenant_created", "tenant_id", "created_at"),
        Index("ix_api_requests_key_created", "api_key_id", "created_at"),
        Index("ix_api_requests_app_created", "app_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # None: a login token
    app_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    mode: Mapped[Mode | None] = mapped_column(str_enum(Mode, "mode"))  # the key's; None for a login
    method: Mapped[str] = mapped_column(String(8))
    # The route template ("/api/transactions/{payment_id}"), never the path with its ids.
    route: Mapped[str] = mapped_column(String(200))
    status_code: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(64))
    network: Mapped[str | None] = mapped_column(String(64))  # IPv4 /24 or IPv6 /64
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ApiKeyNetwork(Base):
    """A network a key was used from (successfully). A key's first network is not news; a later new
    one is told to the owner (core.usage.alerts)."""

    __tablename__ = "api_key_networks"

    api_key_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    network: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
