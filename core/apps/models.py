from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, encrypted, utcnow


class App(Base):
    """One integration of a business: its name, the channel its pushes go through, its keys and its
    webhook endpoints. Keys made before apps existed belong to the business's "Default app"."""

    __tablename__ = "apps"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    # Null until the business has a channel; then the app's pushes go through this one.
    channel_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("mpesa_channels.id", ondelete="SET NULL"))
    # Hosts a push's own `callback_url` may point at (exact host names, lower case). Empty: a push may
    # not carry one; the app's registered endpoints still receive every event they subscribe to.
    callback_hosts: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Signs the deliveries to a push's own callback_url (registered endpoints have their own secrets).
    # Made when first needed; rotated like an endpoint's, the previous one signing for a while too.
    callback_secret_enc: Mapped[str | None] = mapped_column(Text, info=encrypted("webhook secret"))
    previous_callback_secret_enc: Mapped[str | None] = mapped_column(Text, info=encrypted("webhook secret"))
    previous_callback_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<App {self.name}>"
