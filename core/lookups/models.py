"""Questions asked of Daraja whose answer comes later, to the ResultURL: a business's account balance,
and the status of a transaction (a payout whose result never came, a receipt a person looks up).

Daraja mints the OriginatorConversationID of these (their requests carry none), so a lookup is
matched to its result by the ConversationID of the synchronous answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, str_enum, utcnow
from core.tenants.models import Mode


class LookupKind(StrEnum):
    balance = "balance"
    status = "status"


class LookupStatus(StrEnum):
    pending = "pending"
    done = "done"  # the result came and says what was asked (a balance; a transaction's status)
    failed = "failed"  # refused (sync or in the result): result_code/result_desc say why
    timeout = "timeout"  # a QueueTimeOut, or no answer at all in LOOKUP_ANSWER_SECONDS


class Lookup(Base):
    __tablename__ = "mpesa_lookups"
    __table_args__ = (
        Index("ix_mpesa_lookups_channel_kind_created", "channel_id", "kind", "created_at"),
        Index("ix_mpesa_lookups_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mpesa_channels.id", ondelete="CASCADE"))
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode"))
    kind: Mapped[LookupKind] = mapped_column(str_enum(LookupKind, "lookup_kind"))
    status: Mapped[LookupStatus] = mapped_column(str_enum(LookupStatus, "lookup_status"))
    # A status lookup: what was asked (a receipt, or the OriginatorConversationID of a payout), and
    # the object it concerns, whose record the answer completes.
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"))
    payout_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payouts.id", ondelete="SET NULL"))
    conversation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    originator_conversation_id: Mapped[str | None] = mapped_column(String(64))
    result_code: Mapped[str | None] = mapped_column(String(32))
    result_desc: Mapped[str | None] = mapped_column(Text)
    # The parsed answer: the accounts of a balance, the parameters of a transaction's status.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A balance's Working and Utility accounts, for the dashboard without reading `result` (cents).
    working_cents: Mapped[int | None] = mapped_column(BigInteger)
    utility_cents: Mapped[int | None] = mapped_column(BigInteger)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # Daraja's completion time
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
