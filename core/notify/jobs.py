from __future__ import annotations

import logging

from core.db import Scope, utcnow
from core.jobs.registry import job
from core.notify.email import EmailSender
from core.notify.models import Notification, NotifyChannel, NotifyStatus
from core.notify.reports import apply_reports
from core.notify.sms import AfricasTalkingSms, SmsError
from core.notify.telegram import TelegramSender, TelegramUndeliverable
from core.runtime import Runtime, runtime, unit_of_work

log = logging.getLogger(__name__)
# One outbox message by its id, the platform's own (no business) as well as a business's.
DELIVERY = Scope.platform("notification delivery")


@job("notify.send_notification", max_retries=8, min_backoff_ms=2_000, max_backoff_ms=10 * 60_000)
async def send_notification(notification_id: int) -> None:
    """Deliver one outbox message. Channels without a configured sender keep the row pending (it is
    shown in `lipapush outbox`); a blocked bot, deleted chat or a number the gateway refuses is
    recorded as undeliverable, never retried. Other failures raise, so the job is retried with
    backoff (an SMS may then go out twice: the gateway has no idempotency key, and a duplicate
    receipt beats a lost one)."""
    rt = runtime()
    async with unit_of_work(readonly=True, scope=DELIVERY) as session:
        n = await session.get(Notification, notification_id)
        if n is None or n.status is not NotifyStatus.pending:
            return
    if n.channel is NotifyChannel.telegram and rt.settings.TELEGRAM_BOT_TOKEN:
        await _telegram(rt, n)
    elif n.channel is NotifyChannel.sms and rt.settings.sms_configured:
        await _sms(rt, n)
    elif n.channel is NotifyChannel.email and rt.settings.SMTP_URL:
        await EmailSender.from_url(rt.settings.SMTP_URL).send(n)
        await _finish(n, NotifyStatus.sent)
    # else: no sender for this channel: stays pending in the outbox


async def _telegram(rt: Runtime, n: Notification) -> None:
    token = rt.settings.TELEGRAM_BOT_TOKEN
    assert token
    sender = TelegramSender(http=rt.http(), base_url=rt.settings.telegram_api_base, token=token)
    try:
        await sender.send(n)
    except TelegramUndeliverable as exc:
        await _finish(n, NotifyStatus.undeliverable, error=str(exc)[:500])
        return
    await _finish(n, NotifyStatus.sent)


async def _sms(rt: Runtime, n: Notification) -> None:
    s = rt.settings
    assert s.AT_USERNAME and s.AT_API_KEY
    client = AfricasTalkingSms(
        http=rt.http(), username=s.AT_USERNAME, api_key=s.AT_API_KEY, base_url=s.AT_BASE_URL
    )
    try:
        accepted = await client.send(to=n.recipient, message=n.body, sender_id=n.sender_id or s.AT_SENDER_ID)
    except SmsError as exc:
        if exc.retry:
            raise
        await _finish(n, NotifyStatus.undeliverable, error=str(exc))
        return
    await _finish(n, NotifyStatus.sent, provider_message_id=accepted.message_id, cost=accepted.cost)


async def _finish(
    n: Notification,
    status: NotifyStatus,
    *,
    error: str | None = None,
    provider_message_id: str | None = None,
    cost: str | None = None,
) -> None:
    async with unit_of_work(scope=DELIVERY) as session:
        row = await session.get(Notification, n.id)
        if row is None:
            return
        row.status, row.error, row.attempts = status, error, row.attempts + 1
        row.sent_at = utcnow() if status is NotifyStatus.sent else None
        if provider_message_id:
            row.provider_message_id, row.cost = provider_message_id, cost
            await session.flush()
            await apply_reports(session, row)  # any that arrived before this reply
