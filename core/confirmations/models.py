from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, str_enum, utcnow


class ConfirmAction(StrEnum):
    payout = "payout"
    reversal = "reversal"


class Confirmation(Base):
    """A prepared action waiting for its second step. The token is shown once and kept as its SHA-256;
    it belongs to the caller that prepared it (the API key, or the person) and to nobody else.

    `payload` is the exact request the second step carries out, so nothing the agent sends with the
    token can change what was summarised to its person. `used_at` is set once, by a conditional UPDATE,
    and `result_id` names what the second step made (a payout, a reversal)."""

    __tablename__ = "confirmations"
    __table_args__ = (Index("ix_confirmations_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    action: Mapped[ConfirmAction] = mapped_column(str_enum(ConfirmAction, "confirm_action"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result_id: Mapped[str | None] = mapped_column(String(64))
