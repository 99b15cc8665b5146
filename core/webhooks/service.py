"""Webhook endpoints, and events written to the outbox in the transaction of the change they tell.

`emit` is the one way an event leaves: it stores the message (the exact bytes every attempt sends), a
delivery per subscribed endpoint (and one to the push's own callback_url), and enqueues the delivery
job, all in the caller's transaction: an event exists exactly when its change committed, and its
delivery is never on the request path. Services never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.apps.models import App
from core.config import Settings
from core.crypto import SecretBox
from core.db import utcnow
from core.errors import Conflict, InvalidInput, NotFound
from core.jobs.registry import enqueue
from core.tenants.models import Mode
from core.webhooks.events import WEBHOOK_TEST, check_event_types, subscribed
from core.webhooks.jobs import deliver_webhook
from core.webhooks.keys import app_callback_secret
from core.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from core.webhooks.signing import event_body, new_message_id, new_secret
from core.webhooks.ssrf import validate_endpoint_url

# A business's endpoints per app and mode: enough for a primary, a backup and a few tools.
MAX_ENDPOINTS_PER_APP = 10
DEFAULT_SECRET_OVERLAP = timedelta(hours=24)
MAX_SECRET_OVERLAP = timedelta(days=7)
# "Replay everything failed since": at most this many deliveries per request (ask again for more).
MAX_REPLAY = 1000


@dataclass(frozen=True)
class Emitted:
    message: WebhookMessage
    deliveries: list[WebhookDelivery]


def _clean_description(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    if len(value) > 200:
        raise InvalidInput("description", "The description is at most 200 characters.")
    return value or None


def _check_overlap(overlap: timedelta) -> None:
    """How long a rotated-out secret keeps signing: from 0 (it leaked) to MAX_SECRET_OVERLAP."""
    if not timedelta(0) <= overlap <= MAX_SECRET_OVERLAP:
        raise InvalidInput(
            "overlap_seconds", "The overlap is from 0 (stop the old secret now) to 7 days (604800 seconds)."
        )


def _event_types(requested: list[str] | None) -> list[str]:
    try:
        return check_event_types(requested)
    except ValueError as exc:
        raise InvalidInput("event_types", str(exc)) from None


class WebhookService:
    # -- endpoints -------------------------------------------------------------------------------
    async def create_endpoint(
        self,
        session: AsyncSession,
        *,
        app: App,
        mode: Mode,
        url: str,
        event_types: list[str] | None,
        description: str | None,
        box: SecretBox,
        settings: Settings,
    ) -> tuple[WebhookEndpoint, str]:
        """A new endpoint and its secret (returned here, and readable later by the owner)."""
        clean_url = validate_endpoint_url(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS)
        count = await session.scalar(
            select(func.count()).select_from(WebhookEndpoint).where(WebhookEndpoint.app_id == app.id)
        )
        if (count or 0) >= MAX_ENDPOINTS_PER_APP:
            raise Conflict(
                f"This app already has {MAX_ENDPOINTS_PER_APP} webhook endpoints: delete one you no longer "
                "use, or subscribe an existing one to more event types."
            )
        secret = new_secret()
        endpoint = WebhookEndpoint(
            tenant_id=app.tenant_id,
            app_id=app.id,
            mode=mode,
            url=clean_url,
            description=_clean_description(description),
            event_types=_event_types(event_types),
            enabled=True,
            secret_enc=box.encrypt(secret),
        )
        session.add(endpoint)
        await session.flush()
        return endpoint, secret

    async def get_endpoint(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, mode: Mode | None = None
    ) -> WebhookEndpoint:
        """The business's endpoint (of `mode`, when the caller is a key of one mode), else 404."""
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        if (
            endpoint is None
            or endpoint.tenant_id != tenant_id
            or (mode is not None and endpoint.mode != mode)
        ):
            raise NotFound("No such webhook endpoint. List them with GET /api/webhook-endpoints.")
        return endpoint

    async def list_endpoints(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        app_id: uuid.UUID | None = None,
        mode: Mode | None = None,
    ) -> list[WebhookEndpoint]:
        conds = [WebhookEndpoint.tenant_id == tenant_id]
        if app_id is not None:
            conds.append(WebhookEndpoint.app_id == app_id)
        if mode is not None:
            conds.append(WebhookEndpoint.mode == mode)
        rows = await session.scalars(
            select(WebhookEndpoint).where(*conds).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
        return list(rows)

    async def update_endpoint(
        self,
        session: AsyncSession,
        endpoint: WebhookEndpoint,
        *,
        settings: Settings,
        url: str | None = None,
        event_types: list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change what is given. Switching a disabled endpoint back on clears why it was switched off
        and restarts its 5-day clock; deliveries that failed meanwhile are replayed only on request."""
        if url is not None:
            endpoint.url = validate_endpoint_url(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS)
        if event_types is not None:
            endpoint.event_types = _event_types(event_types)
        if description is not None:
            endpoint.description = _clean_description(description)
        if enabled is not None and enabled != endpoint.enabled:
            endpoint.enabled = enabled
            if enabled:
                endpoint.disabled_reason = None
                endpoint.failing_since = None
            else:
                endpoint.disabled_reason = "switched off by the business"
        endpoint.updated_at = utcnow()
        await session.flush()
        return endpoint

    def secret_of(self, endpoint: WebhookEndpoint, box: SecretBox) -> str:
        return box.decrypt(endpoint.secret_enc)

    async def rotate_secret(
        self, session: AsyncSession, endpoint: WebhookEndpoint, *, box: SecretBox, overlap: timedelta
    ) -> str:
        """A new secret; the old one keeps signing beside it for `overlap` (0: stops at once, for a
        leaked secret), so receivers can switch without losing an event. A secret retired earlier
        and still inside its overlap is dropped: only the last one overlaps."""
        _check_overlap(overlap)
        secret = new_secret()
        if overlap > timedelta(0):
            endpoint.previous_secret_enc = endpoint.secret_enc
            endpoint.previous_secret_expires_at = utcnow() + overlap
        else:
            endpoint.previous_secret_enc = None
            endpoint.previous_secret_expires_at = None
        endpoint.secret_enc = box.encrypt(secret)
        endpoint.updated_at = utcnow()
        await session.flush()
        return secret

    # -- the app's callback secret (deliveries to a push's own callback_url) ----------------------
    def callback_secret(self, app: App, box: SecretBox) -> str:
        return app_callback_secret(app, box)

    async def rotate_callback_secret(
        self, session: AsyncSession, app: App, *, box: SecretBox, overlap: timedelta
    ) -> str:
        _check_overlap(overlap)
        secret = new_secret()
        if overlap > timedelta(0) and app.callback_secret_enc is not None:
            app.previous_callback_secret_enc = app.callback_secret_enc
            app.previous_callback_secret_expires_at = utcnow() + overlap
        else:
            app.previous_callback_secret_enc = None
            app.previous_callback_secret_expires_at = None
        app.callback_secret_enc = box.encrypt(secret)
        await session.flush()
        return secret

    def check_callback_url(self, app: App | None, url: str, *, box: SecretBox, settings: Settings) -> str:
        """A push's own callback_url, cleaned, if the app allows its host; else InvalidInput saying
        how to allow it. Makes the app's callback secret if it has none yet (stored by the caller's
        transaction), so the delivery can be signed."""
        if app is None:
            raise InvalidInput(
                "callback_url",
                "A callback_url is for pushes made with an app's API key; register a webhook "
                "endpoint for the business's other payments.",
            )
        clean = validate_endpoint_url(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS)
        host = (urlsplit(clean).hostname or "").lower()
        if host not in app.callback_hosts:
            allowed = ", ".join(app.callback_hosts) or "none yet"
            raise InvalidInput(
                "callback_url",
                f"{host} is not a callback host of the app {app.name} (allowed: {allowed}). Add it with "
                f'PATCH /api/apps/{app.id} {{"callback_hosts": [...]}}.',
            )
        self.callback_secret(app, box)
        return clean

    # -- events ----------------------------------------------------------------------------------
    async def _receivers(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        mode: Mode,
        event_type: str,
        app_id: uuid.UUID | None,
        channel_id: uuid.UUID | None,
    ) -> list[WebhookEndpoint]:
        """Endpoints of `mode` subscribed to `event_type`, switched on or off: of the app that made the
        object, or, for an object no app made (a push from the bot, USSD or the panel, a portal sale),
        of every app on the object's channel."""
        stmt = (
            select(WebhookEndpoint)
            .join(App, App.id == WebhookEndpoint.app_id)
            .where(
                WebhookEndpoint.tenant_id == tenant_id,
                WebhookEndpoint.mode == mode,
                App.archived_at.is_(None),
            )
        )
        if app_id is not None:
            stmt = stmt.where(WebhookEndpoint.app_id == app_id)
        elif channel_id is not None:
            stmt = stmt.where((App.channel_id == channel_id) | App.channel_id.is_(None))
        rows = (await session.scalars(stmt.order_by(WebhookEndpoint.created_at))).all()
        return [e for e in rows if subscribed(e.event_types, event_type)]

    async def next_version(self, session: AsyncSession, *, tenant_id: uuid.UUID, object_id: str) -> int:
        # The object's row is locked by the change that emits (a final payment's UPDATE), so two
        # events of one object never compute the same number.
        last = await session.scalar(
            select(func.max(WebhookMessage.version)).where(
                WebhookMessage.tenant_id == tenant_id, WebhookMessage.object_id == object_id
            )
        )
        return int(last or 0) + 1

    async def emit(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        mode: Mode,
        event_type: str,
        object_id: str,
        data: dict[str, Any],
        created_at: datetime,
        app_id: uuid.UUID | None = None,
        channel_id: uuid.UUID | None = None,
        callback_url: str | None = None,
    ) -> Emitted | None:
        """Queue one event for everyone who asked for it; None when no one did (nothing is stored)."""
        endpoints = await self._receivers(
            session,
            tenant_id=tenant_id,
            mode=mode,
            event_type=event_type,
            app_id=app_id,
            channel_id=channel_id,
        )
        if not endpoints and not (callback_url and app_id):
            return None
        version = await self.next_version(session, tenant_id=tenant_id, object_id=object_id)
        now = utcnow()
        message = WebhookMessage(
            id=new_message_id(now=now),
            tenant_id=tenant_id,
            app_id=app_id,
            mode=mode,
            event_type=event_type,
            object_id=object_id,
            version=version,
            body=event_body(event_type, data, created_at=created_at, version=version).decode(),
            created_at=now,
        )
        session.add(message)
        await session.flush()  # no relationship() orders the inserts: the message goes in first
        # An endpoint switched off gets its delivery recorded as not sent: it is in the log, and
        # "replay failed since" sends it once the endpoint is back on.
        for e in endpoints:
            if not e.enabled:
                session.add(
                    WebhookDelivery(
                        tenant_id=tenant_id,
                        message_id=message.id,
                        endpoint_id=e.id,
                        url=e.url,
                        status=DeliveryStatus.failed,
                        attempts=0,
                        last_error="not sent: the endpoint was switched off",
                    )
                )
        deliveries = [
            WebhookDelivery(tenant_id=tenant_id, message_id=message.id, endpoint_id=e.id, url=e.url)
            for e in endpoints
            if e.enabled
        ]
        if callback_url and app_id:
            deliveries.append(
                WebhookDelivery(
                    tenant_id=tenant_id, message_id=message.id, endpoint_id=None, url=callback_url
                )
            )
        await self._queue(session, deliveries, now=now)
        return Emitted(message, deliveries)

    async def _queue(
        self, session: AsyncSession, deliveries: Iterable[WebhookDelivery], *, now: datetime
    ) -> None:
        rows = list(deliveries)
        for d in rows:
            d.status = DeliveryStatus.pending
            d.next_attempt_at = now
            d.attempts = d.attempts or 0
            session.add(d)
        await session.flush()
        for d in rows:
            await enqueue(session, deliver_webhook, delivery_id=d.id, tenant_id=str(d.tenant_id))

    async def send_test(self, session: AsyncSession, endpoint: WebhookEndpoint) -> WebhookDelivery:
        """A `webhook.test` event to this endpoint only, whatever it subscribes to and even when it
        is switched off (to check it before switching it back on)."""
        now = utcnow()
        message = WebhookMessage(
            id=new_message_id(now=now),
            tenant_id=endpoint.tenant_id,
            app_id=endpoint.app_id,
            mode=endpoint.mode,
            event_type=WEBHOOK_TEST,
            object_id=str(endpoint.id),
            version=0,
            body=event_body(
                WEBHOOK_TEST,
                {
                    "endpoint_id": str(endpoint.id),
                    "mode": endpoint.mode.value,
                    "message": "A test event from lipapush: if you can verify this signature, you are set.",
                },
                created_at=now,
            ).decode(),
            created_at=now,
        )
        session.add(message)
        await session.flush()
        delivery = WebhookDelivery(
            tenant_id=endpoint.tenant_id, message_id=message.id, endpoint_id=endpoint.id, url=endpoint.url
        )
        await self._queue(session, [delivery], now=now)
        return delivery

    # -- the delivery log and replay -------------------------------------------------------------
    async def get_delivery(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, delivery_id: int, mode: Mode | None = None
    ) -> WebhookDelivery:
        delivery = await session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.tenant_id != tenant_id:
            raise NotFound(
                "No such delivery. An endpoint's deliveries are listed at "
                "GET /api/webhook-endpoints/{id}/deliveries."
            )
        if mode is not None:
            message = await session.get(WebhookMessage, delivery.message_id)
            if message is None or message.mode != mode:
                raise NotFound("No such delivery.")
        return delivery

    async def deliveries(
        self,
        session: AsyncSession,
        *,
        endpoint: WebhookEndpoint,
        status: DeliveryStatus | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[tuple[WebhookDelivery, WebhookMessage]]:
        """Newest first; page with `before_id` (the last id of the previous page)."""
        stmt = (
            select(WebhookDelivery, WebhookMessage)
            .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
            .where(WebhookDelivery.endpoint_id == endpoint.id)
        )
        if status is not None:
            stmt = stmt.where(WebhookDelivery.status == status)
        if before_id is not None:
            stmt = stmt.where(WebhookDelivery.id < before_id)
        rows = await session.execute(stmt.order_by(WebhookDelivery.id.desc()).limit(max(1, min(limit, 100))))
        return [(d, m) for d, m in rows.all()]

    async def attempts(self, session: AsyncSession, delivery: WebhookDelivery) -> list[WebhookAttempt]:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery.id)
            .order_by(WebhookAttempt.number)
        )
        return list(rows)

    async def replay(self, session: AsyncSession, delivery: WebhookDelivery) -> WebhookDelivery:
        """Send this delivery again now: the same message, the same webhook-id, signed afresh. One
        attempt (and the schedule's retries if it fails, when the schedule is not used up)."""
        if delivery.status is DeliveryStatus.pending:
            raise Conflict("This delivery is still being tried: wait for its next attempt, or its end.")
        delivery.status = DeliveryStatus.pending
        delivery.next_attempt_at = utcnow()
        await session.flush()
        await enqueue(
            session,
            deliver_webhook,
            delivery_id=delivery.id,
            trigger="replay",
            tenant_id=str(delivery.tenant_id),
        )
        return delivery

    async def replay_failed_since(
        self, session: AsyncSession, endpoint: WebhookEndpoint, *, since: datetime
    ) -> int:
        """Every delivery to this endpoint that failed for good since `since`, sent again (at most
        MAX_REPLAY per call, oldest first). Returns how many."""
        ids = (
            await session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.endpoint_id == endpoint.id,
                    WebhookDelivery.status == DeliveryStatus.failed,
                    WebhookDelivery.created_at >= since,
                )
                .order_by(WebhookDelivery.id)
                .limit(MAX_REPLAY)
            )
        ).all()
        if not ids:
            return 0
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids))
            .values(status=DeliveryStatus.pending, next_attempt_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        for delivery_id in ids:
            await enqueue(
                session,
                deliver_webhook,
                delivery_id=delivery_id,
                trigger="replay",
                tenant_id=str(endpoint.tenant_id),
            )
        return len(ids)


webhooks = WebhookService()
