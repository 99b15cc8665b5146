from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, BigIntId, UTCDateTime, utcnow


class JobOutbox(Base):
    """A job that must run. Written in the transaction that caused it, deleted when the job finishes.

    The broker message is only a wake-up call: if Redis restarts or a worker dies, the relay re-sends
    every row that is still here after its visibility timeout, so no job is ever lost. Jobs are
    idempotent, so a re-send is harmless.
    """

    __tablename__ = "job_outbox"
    __table_args__ = (Index("ix_job_outbox_pending", "failed_at", "sent_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(100))
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A job that must not run before a time (a voucher's expiry): the relay sends it when due.
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sends: Mapped[int] = mapped_column(Integer, default=0)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    # The request that caused the job (none for scheduled work), shown next to a failed job.
    request_id: Mapped[str | None] = mapped_column(String(64))


class PeriodicRun(Base):
    """When the scheduler last enqueued each periodic job (core/jobs/scheduler.py).

    Kept in the database, not in the scheduler's memory, so a restart or a failover to another
    scheduler neither runs a daily job again nor forgets one: a job is enqueued only once its period
    has passed since `last_enqueued_at`, by a conditional UPDATE, so two schedulers racing for it
    enqueue it once. Platform bookkeeping, not a business's rows: no tenant_id, no row-level security.
    """

    __tablename__ = "periodic_runs"

    job: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime)
