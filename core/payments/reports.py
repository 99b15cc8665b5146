"""Read-only figures over a business's customer payments for dashboards: the day-by-day series of the
last 30 days, and the summary of one staff member's own pushes (a cashier's dashboard).

Kept apart from service.py (already past the size where house style splits a module by use case)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.payments.models import CUSTOMER_SOURCES, Payment, PaymentStatus
from core.tenants.models import Mode

EAT = ZoneInfo("Africa/Nairobi")
MAX_DAYS = 92


@dataclass(frozen=True)
class DayTotal:
    day: date  # East Africa Time
    paid_kes: int  # shillings collected by successful payments requested that day
    paid: int
    unpaid: int  # failed, cancelled, timed out, expired (pending ones are not counted yet)


class PaymentReports:
    def _conds(
        self,
        tenant_id: uuid.UUID,
        initiated_by: uuid.UUID | None,
        mode: Mode | None = None,
        channel_id: uuid.UUID | None = None,
    ) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [
            Payment.tenant_id == tenant_id,
            Payment.source.in_(list(CUSTOMER_SOURCES)),
        ]
        if initiated_by is not None:
            conds.append(Payment.initiated_by_id == initiated_by)
        if mode is not None:
            conds.append(Payment.mode == mode)
        if channel_id is not None:
            conds.append(Payment.channel_id == channel_id)
        return conds

    async def daily_totals(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        days: int = 30,
        now: datetime | None = None,
        initiated_by: uuid.UUID | None = None,
        mode: Mode | None = None,
        channel_id: uuid.UUID | None = None,
    ) -> list[DayTotal]:
        """One entry per EAT day of the last `days` (today included, oldest first), customer payments
        only (through one channel, with `channel_id`), bucketed by the Nairobi day they were requested
        on. The read is a narrow select bounded to the period and grouped here, which works the same on
        SQLite and Postgres."""
        days = max(1, min(days, MAX_DAYS))
        today = (now or utcnow()).astimezone(EAT).date()
        first = today - timedelta(days=days - 1)
        since = datetime(first.year, first.month, first.day, tzinfo=EAT)
        rows = await session.execute(
            select(Payment.created_at, Payment.status, Payment.amount).where(
                *self._conds(tenant_id, initiated_by, mode, channel_id), Payment.created_at >= since
            )
        )
        paid_kes = [0] * days
        paid = [0] * days
        unpaid = [0] * days
        for created_at, status, amount in rows:
            i = (created_at.astimezone(EAT).date() - first).days
            if not 0 <= i < days:
                continue
            status = PaymentStatus(status)
            if status is PaymentStatus.success:
                paid[i] += 1
                paid_kes[i] += int(amount)
            elif status.is_final:
                unpaid[i] += 1
        return [DayTotal(first + timedelta(days=i), paid_kes[i], paid[i], unpaid[i]) for i in range(days)]


reports = PaymentReports()
