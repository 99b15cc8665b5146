from __future__ import annotations

import logging

from core.db import utcnow
from core.jobs.registry import job
from core.notify.models import Notification, NotifyChannel, NotifyStatus
from core.notify.telegram import TelegramSender, TelegramUndeliverable
from core.runtime import runtime, unit_of_work

log = logging.getLogger(__name__)


@job("notify.send_notification", max_retries=8, min_backoff_ms=2_000, max_backoff_ms=10 * 60_000)
async def send_notification(notification_id: int) -> None:
    """Deliver one outbox message. Channels without a configured sender keep the row pending (it is
    shown in `lipapush outbox`); a blocked bot or deleted chat is recorded as undeliverable, never
    retried. Other failures raise, so Dramatiq retries with backoff."""
    rt = runtime()
    async with unit_of_work(readonly=True) as session:
        n = await session.get(Notification, notification_id)
        if n is None or n.status is not NotifyStatus.pending:
            return
    if n.channel is NotifyChannel.telegram and rt.settings.TELEGRAM_BOT_TOKEN:
        sender = TelegramSender(
            http=rt.http(), base_url=rt.settings.telegram_api_base, token=rt.settings.TELEGRAM_BOT_TOKEN
        )
        try:
            await sender.send(n)
            status, error = NotifyStatus.sent, None
        except TelegramUndeliverable as exc:
            status, error = NotifyStatus.undeliverable, str(exc)[:500]
    else:
        return  # no sender for this channel yet: stays pending in the outbox
    async with unit_of_work() as session:
        row = await session.get(Notification, notification_id)
        if row is not None:
            row.status, row.error, row.attempts = status, error, row.attempts + 1
            row.sent_at = utcnow() if status is NotifyStatus.sent else None
