"""Africa's Talking delivery reports for our SMS: recorded as they come, applied in order, once.

Kept apart from the service so the send job (which applies reports that arrived before the send
returned) and the service (which queues that job) do not import each other.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.notify.models import Notification, NotifyStatus, SmsDeliveryReport

FINAL_DELIVERY = frozenset({NotifyStatus.delivered, NotifyStatus.failed, NotifyStatus.undeliverable})
# Final failures in a delivery report; others (Sent, Submitted, Buffered, unknown new ones) are progress.
FAILED_DELIVERY = frozenset({"Failed", "Rejected", "AbsentSubscriber", "Expired"})


async def record_delivery_report(
    session: AsyncSession, *, message_id: str, status: str, failure_reason: str | None
) -> None:
    """Record an Africa's Talking delivery report, then apply it if its message is known (else the
    send job applies it once it has recorded the message id)."""
    session.add(
        SmsDeliveryReport(provider_message_id=message_id, status=status, failure_reason=failure_reason)
    )
    await session.flush()
    row = await session.scalar(
        select(Notification).where(Notification.provider_message_id == message_id).with_for_update()
    )
    if row is not None:
        await apply_reports(session, row)


async def apply_reports(session: AsyncSession, row: Notification) -> None:
    """Apply the reports received for this SMS, in arrival order. Reports repeat and reorder, so a
    final state (delivered, failed) never changes again."""
    reports = await session.scalars(
        select(SmsDeliveryReport)
        .where(
            SmsDeliveryReport.provider_message_id == row.provider_message_id,
            SmsDeliveryReport.applied_at.is_(None),
        )
        .order_by(SmsDeliveryReport.id)
    )
    now = utcnow()
    for report in reports:
        report.applied_at = now
        if row.status in FINAL_DELIVERY:
            continue
        row.delivery_status = report.status
        if report.status == "Success":
            row.status, row.delivered_at = NotifyStatus.delivered, now
        elif report.status in FAILED_DELIVERY:
            row.status = NotifyStatus.failed
            row.error = f"{report.status}: {report.failure_reason or 'no reason given'}"[:500]
