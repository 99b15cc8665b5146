"""The delivery job: one attempt of one delivery, then the next one scheduled or the end recorded.

Read what to send, send it outside any transaction (a slow receiver holds no database connection),
then record the attempt in one transaction that also ends the job (core.runtime.unit_of_work) and,
when it failed, queues the next attempt in the job outbox at the schedule's time. A worker that dies
mid-send leaves the job in the outbox: the relay sends it again and the receiver gets the same
`webhook-id` twice, which the Standard Webhooks contract tells it to expect.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.apps.models import App
from core.db import Scope, narrow_scope, utcnow
from core.jobs.registry import enqueue_at, job
from core.notify.service import notify
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant
from core.webhooks.delivery import DeliveryOutcome, DeliveryResult
from core.webhooks.events import WEBHOOK_TEST
from core.webhooks.keys import callback_signing_secrets, endpoint_signing_secrets
from core.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from core.webhooks.schedule import next_attempt_at, should_disable
from core.webhooks.signing import sign

log = logging.getLogger(__name__)

# A job carries only the delivery's id: whose it is, is what its first read finds out.
FIND_DELIVERY = Scope.platform("webhooks.deliver: the business of a delivery")


# How stale `last_success_at` may get: writing it on every success would make every delivery to one
# endpoint queue on that endpoint's row (bench/webhook_latency.py measured it).
SUCCESS_STAMP_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class _Send:
    tenant_id: uuid.UUID
    url: str
    body: bytes
    msg_id: str
    secrets: list[str]
    endpoint_id: uuid.UUID | None
    # The endpoint's health as read: a success needs no write (nor lock) when nothing changes.
    failing_since: datetime | None = None
    last_success_at: datetime | None = None


async def _prepare(delivery_id: int, tenant_id: str | None) -> _Send | str:
    """What to send, or why nothing is (already done, not due, endpoint switched off): one query."""
    box = runtime().secrets
    scope = Scope.tenant(uuid.UUID(tenant_id)) if tenant_id else FIND_DELIVERY
    async with unit_of_work(scope=scope, readonly=True) as session:
        row = (
            await session.execute(
                select(WebhookDelivery, WebhookMessage, WebhookEndpoint, App)
                .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
                .outerjoin(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                # the endpoint's app, or for a push's own callback_url the app that made the push
                .outerjoin(App, App.id == func.coalesce(WebhookEndpoint.app_id, WebhookMessage.app_id))
                .where(WebhookDelivery.id == delivery_id)
            )
        ).first()
        if row is None:
            return "gone"
        delivery, message, endpoint, app = row
        if delivery.status is not DeliveryStatus.pending:
            return f"already {delivery.status.value}"
        now = utcnow()
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            # A stray copy of an earlier attempt's job: the scheduled one comes at its time.
            return "not due"
        if app is None or app.archived_at is not None:
            return "app archived"
        if delivery.endpoint_id is not None:
            if endpoint is None:
                return "endpoint deleted"
            if not endpoint.enabled and message.event_type != WEBHOOK_TEST:
                return "endpoint disabled"
            secrets = endpoint_signing_secrets(endpoint, box, now=now)
            # Where the endpoint is now: a URL the business replaced gets no more retries or replays.
            url = endpoint.url
        else:
            if app.callback_secret_enc is None:
                return "no app secret"
            url = delivery.url
            if (urlsplit(url).hostname or "").lower() not in app.callback_hosts:
                return "callback host no longer allowed"
            secrets = callback_signing_secrets(app, box, now=now)
        return _Send(
            tenant_id=delivery.tenant_id,
            url=url,
            body=message.body.encode(),
            msg_id=message.id,
            secrets=secrets,
            endpoint_id=delivery.endpoint_id,
            failing_since=endpoint.failing_since if endpoint is not None else None,
            last_success_at=endpoint.last_success_at if endpoint is not None else None,
        )


async def _close_unsent(delivery_id: int, why: str) -> None:
    """A delivery that can no longer be sent (its endpoint was switched off or deleted) ends failed,
    so it shows in the log and "replay failed since" can send it once the endpoint is back."""
    async with unit_of_work(scope=FIND_DELIVERY) as session:
        delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.status is not DeliveryStatus.pending:
            return
        await narrow_scope(session, delivery.tenant_id)
        delivery.status = DeliveryStatus.failed
        delivery.next_attempt_at = None
        delivery.last_error = f"not sent: {why}"


UNSENDABLE = {
    "endpoint disabled": "the endpoint was switched off",
    "endpoint deleted": "the endpoint was deleted",
    "no app secret": "the app has no callback secret",
    "app archived": "the app was archived",
    "callback host no longer allowed": "the app no longer allows this callback host",
}


# Its own queue: deliveries never wait behind a backlog of callbacks to apply, nor hold them up.
@job("webhooks.deliver", max_retries=5, queue="webhooks")
async def deliver_webhook(
    *, delivery_id: int, trigger: str = "scheduled", tenant_id: str | None = None
) -> None:
    prepared = await _prepare(delivery_id, tenant_id)
    if isinstance(prepared, str):
        if prepared in UNSENDABLE:
            await _close_unsent(delivery_id, UNSENDABLE[prepared])
        else:
            log.debug("webhook delivery %s not sent: %s", delivery_id, prepared)
        return
    rt = runtime()
    headers = sign(prepared.body, msg_id=prepared.msg_id, timestamp=utcnow(), secrets=prepared.secrets)
    result = await rt.webhook_sender().send(prepared.url, prepared.body, headers)
    await _record(delivery_id, prepared, result, trigger=trigger)


async def _record(delivery_id: int, sent: _Send, result: DeliveryResult, *, trigger: str) -> None:
    now = utcnow()
    async with unit_of_work(scope=Scope.tenant(sent.tenant_id)) as session:
        # FOR NO KEY UPDATE: never blocks the foreign-key checks of a callback adding deliveries.
        delivery = await session.scalar(
            select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update(key_share=True)
        )
        if delivery is None or delivery.status is not DeliveryStatus.pending:
            # Another copy of this job finished it meanwhile (the relay re-sent a slow one): its
            # outcome stands; this attempt is not logged over it.
            return
        delivery.url = sent.url
        delivery.attempts += 1
        session.add(
            WebhookAttempt(
                tenant_id=delivery.tenant_id,
                delivery_id=delivery.id,
                number=delivery.attempts,
                trigger=trigger,
                outcome=result.outcome.value,
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                response_excerpt=result.response_excerpt or None,
                error=result.error,
                attempted_at=now,
            )
        )
        delivery.last_status_code = result.status_code
        delivery.last_error = result.error
        if result.outcome is DeliveryOutcome.delivered:
            delivery.status = DeliveryStatus.succeeded
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            stale = sent.last_success_at is None or now - sent.last_success_at >= SUCCESS_STAMP_EVERY
            if sent.endpoint_id is not None and (sent.failing_since is not None or stale):
                await session.execute(
                    update(WebhookEndpoint)
                    .where(WebhookEndpoint.id == sent.endpoint_id)
                    .values(failing_since=None, last_success_at=now)
                )
            return
        endpoint = (
            await session.scalar(
                select(WebhookEndpoint)
                .where(WebhookEndpoint.id == sent.endpoint_id)
                .with_for_update(key_share=True)
            )
            if sent.endpoint_id is not None
            else None
        )
        if endpoint is not None and endpoint.failing_since is None:
            endpoint.failing_since = now
        if result.outcome is DeliveryOutcome.gone:
            delivery.status = DeliveryStatus.failed
            delivery.next_attempt_at = None
            if endpoint is not None:
                await _disable(session, endpoint, "it answered 410 Gone")
            return
        if endpoint is not None and endpoint.enabled and should_disable(endpoint.failing_since, now):
            delivery.status = DeliveryStatus.failed
            delivery.next_attempt_at = None
            await _disable(session, endpoint, "no delivery succeeded for 5 days")
            return
        following = next_attempt_at(delivery.attempts, now, result.retry_after)
        scale = runtime().settings.WEBHOOK_RETRY_SCALE
        if following is not None and scale != 1.0:
            following = now + (following - now) * scale
        if following is None:
            delivery.status = DeliveryStatus.failed
            delivery.next_attempt_at = None
            return
        delivery.next_attempt_at = following
        await enqueue_at(
            session, deliver_webhook, following, delivery_id=delivery.id, tenant_id=str(delivery.tenant_id)
        )


async def _disable(session: AsyncSession, endpoint: WebhookEndpoint, why: str) -> None:
    endpoint.enabled = False
    endpoint.disabled_reason = why
    endpoint.updated_at = utcnow()
    tenant = await session.get(Tenant, endpoint.tenant_id)
    if tenant is not None:
        await notify.to_owner(
            session,
            tenant=tenant,
            kind="webhook.disabled",
            body=f"lipapush stopped sending events to {endpoint.url[:120]}: {why}. Fix the receiver, then "
            "switch the endpoint back on and replay what failed (panel → Webhooks, or the API).",
        )


PRUNE = Scope.platform("webhooks.prune: every business's old webhook messages")
PRUNE_BATCH = 2000


@job("webhooks.prune", max_retries=3)
async def prune_webhooks() -> None:
    """Delete messages older than WEBHOOK_RETENTION_DAYS with no delivery still being tried, with their
    deliveries and attempt logs, in batches (each its own transaction, so the tables stay available)."""
    cutoff = utcnow() - timedelta(days=runtime().settings.WEBHOOK_RETENTION_DAYS)
    while True:
        async with unit_of_work(scope=PRUNE) as session:
            pending = select(WebhookDelivery.message_id).where(
                WebhookDelivery.status == DeliveryStatus.pending
            )
            ids = (
                await session.scalars(
                    select(WebhookMessage.id)
                    .where(WebhookMessage.created_at < cutoff, WebhookMessage.id.not_in(pending))
                    .limit(PRUNE_BATCH)
                )
            ).all()
            if not ids:
                return
            deliveries = select(WebhookDelivery.id).where(WebhookDelivery.message_id.in_(ids))
            await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
            await session.execute(delete(WebhookDelivery).where(WebhookDelivery.message_id.in_(ids)))
            await session.execute(delete(WebhookMessage).where(WebhookMessage.id.in_(ids)))
        if len(ids) < PRUNE_BATCH:
            return
