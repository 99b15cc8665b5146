from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, BigIntId, UTCDateTime, encrypted, str_enum, utcnow
from core.tenants.models import Mode


class WebhookEndpoint(Base):
    """A URL of the merchant's own system that receives an app's events of one mode."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode"))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(200))
    # Event types it receives (core.webhooks.events.EVENT_TYPES); empty means every type.
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    # Why it was switched off, when the platform did it (410 Gone, 5 days of failures).
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    secret_enc: Mapped[str] = mapped_column(Text, info=encrypted("webhook secret"))
    # The secret before the last rotation, still signing beside the new one until it expires.
    previous_secret_enc: Mapped[str | None] = mapped_column(Text, info=encrypted("webhook secret"))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The first failure since the last success (null while healthy): the 5-day disable clock.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:  # never the secret
        return f"<WebhookEndpoint {self.url} {self.mode}>"


class WebhookMessage(Base):
    """One event, written in the transaction of the change it tells about. `body` holds the exact
    bytes every attempt sends, so a replay days later is the same message with the same id."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        Index("ix_webhook_messages_object", "tenant_id", "object_id", "version"),
        Index("ix_webhook_messages_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # msg_…, the webhook-id header
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    app_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("apps.id", ondelete="SET NULL"))
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode"))
    event_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(64))
    # 1, 2, … per object: a receiver keeps the highest it has seen and ignores older ones.
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryStatus(StrEnum):
    pending = "pending"  # an attempt is due (now or at next_attempt_at)
    succeeded = "succeeded"
    failed = "failed"  # every attempt of the schedule failed, or the endpoint was switched off


class WebhookDelivery(Base):
    """One message to one URL: a registered endpoint, or a push's own callback_url (endpoint_id null)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "endpoint_id"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(ForeignKey("webhook_messages.id", ondelete="CASCADE"))
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    # Where it goes: the endpoint's URL when it was queued, or the push's callback_url.
    url: Mapped[str] = mapped_column(String(2048))
    status: Mapped[DeliveryStatus] = mapped_column(
        str_enum(DeliveryStatus, "webhook_delivery_status"), default=DeliveryStatus.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttempt(Base):
    """One try of a delivery: the delivery log a developer reads."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "number"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    # scheduled (the retry schedule), replay (someone asked again)
    trigger: Mapped[str] = mapped_column(String(16), default="scheduled")
    outcome: Mapped[str] = mapped_column(String(16))  # delivered, failed, gone, blocked
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
