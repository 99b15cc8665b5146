"""Webhook endpoints from any entry point (API, panel, CLI): register one, change it, read or rotate its
secret, send a test event, read its delivery log, replay.

An API key works on its own app's endpoints of its own mode (a test key never sees a live endpoint);
a person names the app (or gets the business's first one) and the endpoint takes the app's mode.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select

from core import ratelimit
from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import UnitOfWork, unit_of_work, use_case
from core.apps.models import App
from core.apps.service import apps
from core.errors import NotFound, TooManyRequests
from core.runtime import runtime
from core.webhooks.events import EVENT_TYPES, MONEY_OUT_EVENTS
from core.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookMessage
from core.webhooks.schemas import (
    AttemptOut,
    DeliveryDetail,
    DeliveryOut,
    DeliveryPage,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
    EventTypeOut,
    SecretOut,
)
from core.webhooks.service import webhooks

# "Send test event" makes a row and an outgoing request each time: enough to debug a receiver, not
# enough to use lipapush as a load generator against someone's server.
TEST_EVENTS = ratelimit.Limit("webhook_test_events", 10, 60)


def audit_url(url: str) -> str:
    """A URL as the audit log keeps it: without its query string, where receivers often put a token."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="…" if parts.query else "", fragment=""))


def event_types() -> list[EventTypeOut]:
    return [EventTypeOut(type=t, description=d) for t, d in EVENT_TYPES.items()]


async def _app_for(uow: UnitOfWork, app_id: uuid.UUID | None) -> App:
    actor = uow.actor
    tenant_id = actor.require_tenant()
    if actor.app_id is not None:
        if app_id is not None and app_id != actor.app_id:
            raise NotFound("No such app for this key: a key manages its own app's webhooks only.")
        return await apps.get(uow.session, tenant_id=tenant_id, app_id=actor.app_id)
    if app_id is not None:
        return await apps.get(uow.session, tenant_id=tenant_id, app_id=app_id)
    return await apps.default_app(uow.session, tenant_id=tenant_id)


async def _endpoint(uow: UnitOfWork, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    actor = uow.actor
    endpoint = await webhooks.get_endpoint(
        uow.session, tenant_id=actor.require_tenant(), endpoint_id=endpoint_id, mode=actor.mode
    )
    if actor.app_id is not None and endpoint.app_id != actor.app_id:
        raise NotFound("No such webhook endpoint. List them with GET /api/webhook-endpoints.")
    return endpoint


def _delivery_out(d: WebhookDelivery, m: WebhookMessage) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        message_id=m.id,
        event_type=m.event_type,
        object_id=m.object_id,
        version=m.version,
        url=d.url,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=d.created_at,
        delivered_at=d.delivered_at,
    )


def _may_subscribe(actor: Actor, event_types: list[str] | None) -> None:
    """Payout events carry payouts: naming them needs the right to read payouts (a key's
    payouts:read), as reading them through the API does."""
    if event_types and MONEY_OUT_EVENTS.intersection(event_types):
        actor.require(Permission.payouts_read)


@use_case(Permission.webhooks_manage, audit="webhook.endpoint_created")
async def create_endpoint(actor: Actor, data: EndpointIn) -> EndpointCreated:
    """Register a URL; the answer holds its signing secret. The endpoint's mode is the key's (an API
    key) or its app's (a person). Money out's events only when named, by one who may read payouts."""
    _may_subscribe(actor, data.event_types)
    rt = runtime()
    async with unit_of_work(actor) as uow:
        app = await _app_for(uow, data.app_id)
        mode = actor.mode or await apps.mode_of(uow.session, app)
        endpoint, secret = await webhooks.create_endpoint(
            uow.session,
            app=app,
            mode=mode,
            url=data.url,
            event_types=data.event_types,
            description=data.description,
            box=rt.secrets,
            settings=rt.settings,
        )
        await uow.audit(
            "webhook.endpoint_created",
            target=str(endpoint.id),
            url=audit_url(endpoint.url),
            mode=mode.value,
            event_types=endpoint.event_types,
        )
        return EndpointCreated(**EndpointOut.model_validate(endpoint).model_dump(), secret=secret)


@use_case(Permission.webhooks_manage, query=True)
async def list_endpoints(actor: Actor, *, app_id: uuid.UUID | None = None) -> list[EndpointOut]:
    async with unit_of_work(actor, readonly=True) as uow:
        rows = await webhooks.list_endpoints(
            uow.session, tenant_id=actor.require_tenant(), app_id=actor.app_id or app_id, mode=actor.mode
        )
        return [EndpointOut.model_validate(r) for r in rows]


@use_case(Permission.webhooks_manage, query=True)
async def get_endpoint(actor: Actor, endpoint_id: uuid.UUID) -> EndpointOut:
    async with unit_of_work(actor, readonly=True) as uow:
        return EndpointOut.model_validate(await _endpoint(uow, endpoint_id))


@use_case(Permission.webhooks_manage, audit="webhook.endpoint_changed")
async def update_endpoint(actor: Actor, endpoint_id: uuid.UUID, patch: EndpointPatch) -> EndpointOut:
    _may_subscribe(actor, patch.event_types)
    async with unit_of_work(actor) as uow:
        endpoint = await _endpoint(uow, endpoint_id)
        await webhooks.update_endpoint(
            uow.session,
            endpoint,
            settings=runtime().settings,
            url=patch.url,
            event_types=patch.event_types,
            description=patch.description,
            enabled=patch.enabled,
        )
        changed = patch.model_dump(exclude_none=True)
        if "url" in changed:
            changed["url"] = audit_url(endpoint.url)
        await uow.audit("webhook.endpoint_changed", target=str(endpoint.id), **changed)
        return EndpointOut.model_validate(endpoint)


@use_case(Permission.webhooks_manage, audit="webhook.endpoint_deleted")
async def delete_endpoint(actor: Actor, endpoint_id: uuid.UUID) -> None:
    """Delete it and its delivery log; deliveries still queued for it are not sent."""
    async with unit_of_work(actor) as uow:
        endpoint = await _endpoint(uow, endpoint_id)
        await uow.audit("webhook.endpoint_deleted", target=str(endpoint.id), url=audit_url(endpoint.url))
        await uow.session.delete(endpoint)


@use_case(Permission.webhooks_manage, audit="webhook.secret_viewed")
async def endpoint_secret(actor: Actor, endpoint_id: uuid.UUID) -> SecretOut:
    """The current signing secret (the audit log records who read it)."""
    async with unit_of_work(actor) as uow:
        endpoint = await _endpoint(uow, endpoint_id)
        await uow.audit("webhook.secret_viewed", target=str(endpoint.id))
        return SecretOut(
            secret=webhooks.secret_of(endpoint, runtime().secrets),
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
        )


@use_case(Permission.webhooks_manage, audit="webhook.secret_rotated")
async def rotate_secret(actor: Actor, endpoint_id: uuid.UUID, *, overlap_seconds: int = 86400) -> SecretOut:
    """A new secret; during the overlap every delivery carries two signatures (new and old)."""
    async with unit_of_work(actor) as uow:
        endpoint = await _endpoint(uow, endpoint_id)
        secret = await webhooks.rotate_secret(
            uow.session, endpoint, box=runtime().secrets, overlap=timedelta(seconds=overlap_seconds)
        )
        await uow.audit("webhook.secret_rotated", target=str(endpoint.id), overlap_seconds=overlap_seconds)
        return SecretOut(secret=secret, previous_secret_expires_at=endpoint.previous_secret_expires_at)


@use_case(Permission.webhooks_manage, audit="webhook.test_sent")
async def send_test_event(actor: Actor, endpoint_id: uuid.UUID) -> DeliveryOut:
    """A `webhook.test` event to this endpoint now; its delivery shows in the log like any other."""
    async with unit_of_work(actor) as uow:
        endpoint = await _endpoint(uow, endpoint_id)
        if (wait := await ratelimit.acquire(TEST_EVENTS, str(endpoint.id))) is not None:
            raise TooManyRequests(
                f"This endpoint was sent {TEST_EVENTS.amount} test events in the last minute, the most "
                f"it may be. Try again in {wait} second{'s' if wait != 1 else ''}.",
                limit=TEST_EVENTS.name,
                allowed=TEST_EVENTS.amount,
                window_seconds=TEST_EVENTS.window,
                retry_after=wait,
            )
        delivery = await webhooks.send_test(uow.session, endpoint)
        await uow.audit("webhook.test_sent", target=str(endpoint.id))
        message = await uow.session.get(WebhookMessage, delivery.message_id)
        assert message is not None
        return _delivery_out(delivery, message)


@use_case(Permission.webhooks_manage, query=True)
async def list_deliveries(
    actor: Actor,
    endpoint_id: uuid.UUID,
    *,
    status: DeliveryStatus | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> DeliveryPage:
    async with unit_of_work(actor, readonly=True) as uow:
        endpoint = await _endpoint(uow, endpoint_id)
        rows = await webhooks.deliveries(
            uow.session, endpoint=endpoint, status=status, before_id=before_id, limit=limit
        )
        items = [_delivery_out(d, m) for d, m in rows]
        full = len(items) >= max(1, min(limit, 100))
        return DeliveryPage(items=items, next_before_id=items[-1].id if items and full else None)


async def _delivery(uow: UnitOfWork, delivery_id: int) -> tuple[WebhookDelivery, WebhookMessage]:
    actor = uow.actor
    delivery = await webhooks.get_delivery(
        uow.session, tenant_id=actor.require_tenant(), delivery_id=delivery_id, mode=actor.mode
    )
    message = await uow.session.get(WebhookMessage, delivery.message_id)
    assert message is not None
    if actor.app_id is not None and message.app_id != actor.app_id:
        owner = await uow.session.scalar(
            select(WebhookEndpoint.app_id).where(WebhookEndpoint.id == delivery.endpoint_id)
        )
        if owner != actor.app_id:
            raise NotFound("No such delivery.")
    return delivery, message


@use_case(Permission.webhooks_manage, query=True)
async def get_delivery(actor: Actor, delivery_id: int) -> DeliveryDetail:
    async with unit_of_work(actor, readonly=True) as uow:
        delivery, message = await _delivery(uow, delivery_id)
        log = await webhooks.attempts(uow.session, delivery)
        return DeliveryDetail(
            **_delivery_out(delivery, message).model_dump(),
            payload=message.body,
            attempt_log=[AttemptOut.model_validate(a) for a in log],
        )


@use_case(Permission.webhooks_manage, audit="webhook.replayed")
async def replay_delivery(actor: Actor, delivery_id: int) -> DeliveryOut:
    """Send one delivery again now, with the same webhook-id."""
    async with unit_of_work(actor) as uow:
        delivery, message = await _delivery(uow, delivery_id)
        await webhooks.replay(uow.session, delivery)
        await uow.audit("webhook.replayed", target=str(delivery.id), message_id=message.id)
        return _delivery_out(delivery, message)


@use_case(Permission.webhooks_manage, audit="webhook.replayed")
async def replay_failed(actor: Actor, endpoint_id: uuid.UUID, *, since: datetime) -> int:
    """Send again every delivery to this endpoint that failed since `since` (at most 1000 per call)."""
    async with unit_of_work(actor) as uow:
        endpoint = await _endpoint(uow, endpoint_id)
        count = await webhooks.replay_failed_since(uow.session, endpoint, since=since)
        await uow.audit("webhook.replayed", target=str(endpoint.id), since=since.isoformat(), count=count)
        return count


@use_case(Permission.webhooks_manage, audit="webhook.callback_secret_viewed")
async def callback_secret(actor: Actor, app_id: uuid.UUID) -> SecretOut:
    """The secret that signs deliveries to a push's own callback_url (made on first read)."""
    async with unit_of_work(actor) as uow:
        app = await _app_for(uow, app_id)
        secret = webhooks.callback_secret(app, runtime().secrets)
        await uow.audit("webhook.callback_secret_viewed", target=str(app.id))
        return SecretOut(secret=secret, previous_secret_expires_at=app.previous_callback_secret_expires_at)


@use_case(Permission.webhooks_manage, audit="webhook.callback_secret_rotated")
async def rotate_callback_secret(
    actor: Actor, app_id: uuid.UUID, *, overlap_seconds: int = 86400
) -> SecretOut:
    async with unit_of_work(actor) as uow:
        app = await _app_for(uow, app_id)
        secret = await webhooks.rotate_callback_secret(
            uow.session, app, box=runtime().secrets, overlap=timedelta(seconds=overlap_seconds)
        )
        await uow.audit(
            "webhook.callback_secret_rotated", target=str(app.id), overlap_seconds=overlap_seconds
        )
        return SecretOut(secret=secret, previous_secret_expires_at=app.previous_callback_secret_expires_at)
