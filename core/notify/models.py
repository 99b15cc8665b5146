from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, BigIntId, UTCDateTime, str_enum, utcnow


class NotifyChannel(StrEnum):
    telegram = "telegram"
    sms = "sms"
    email = "email"


class NotifyStatus(StrEnum):
    pending = "pending"  # waiting for a sender (or for one to be configured)
    sent = "sent"
    delivered = "delivered"
    failed = "failed"  # retries exhausted
    undeliverable = "undeliverable"  # blocked bot, deleted chat, bad number: retrying cannot help


# Messages that carry something that lets the reader act as the recipient: a sign-in code, a password
# reset or staff invite link, a USSD phone code, a WiFi voucher, a download link to customer data. The
# panel's outbox shows that they were sent and how delivery went, never what they say.
SECRET_KINDS = frozenset(
    {"auth.code", "auth.reset_link", "staff.invite", "ussd.phone_code", "hotspot.voucher", "export.customers"}
)


class Notification(Base):
    """The notification outbox: every message to a merchant or customer is a row first, whether or
    not a sender for its channel is configured yet."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[NotifyChannel] = mapped_column(str_enum(NotifyChannel, "notify_channel"))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # Telegram: edit this message instead of sending a new one; a payment it reports on.
    edit_message_id: Mapped[int | None] = mapped_column(BigInteger)
    payment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    buttons: Mapped[list[list[str]] | None] = mapped_column(JSON)  # [[text, callback_data], …]
    # SMS: the sender id used, the gateway's message id (delivery reports are matched on it), its
    # latest delivery status and cost; email: a file to attach (deleted once sent).
    sender_id: Mapped[str | None] = mapped_column(String(11))
    provider_message_id: Mapped[str | None] = mapped_column(String(64), index=True)
    delivery_status: Mapped[str | None] = mapped_column(String(40))
    cost: Mapped[str | None] = mapped_column(String(32))
    attachment_path: Mapped[str | None] = mapped_column(Text)
    status: Mapped[NotifyStatus] = mapped_column(
        str_enum(NotifyStatus, "notify_status"), default=NotifyStatus.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SmsDeliveryReport(Base):
    """Every delivery report as received, stored first: a report can arrive before the send job has
    recorded the message id it refers to, and is applied then (see NotifyService.apply_reports)."""

    __tablename__ = "sms_delivery_reports"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    provider_message_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(40))
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
