"""Webhook endpoints over HTTP: the developer's side of core/webhooks (Standard Webhooks signing)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from core.webhooks import use_cases as hooks
from core.webhooks.models import DeliveryStatus
from core.webhooks.schemas import (
    DeliveryDetail,
    DeliveryOut,
    DeliveryPage,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
    EventTypeOut,
    ReplayIn,
    ReplayOut,
    RotateIn,
    SecretOut,
)
from web.deps import CurrentActor

router = APIRouter(tags=["webhooks"])


@router.get("/webhook-event-types")
async def list_event_types() -> list[EventTypeOut]:
    """Every event type an endpoint can subscribe to, with what it means."""
    return hooks.event_types()


@router.post("/webhook-endpoints", status_code=201)
async def create_endpoint(body: EndpointIn, actor: CurrentActor) -> EndpointCreated:
    """Register a URL of your system. The answer holds `secret` (whsec_…), which verifies every
    delivery's `webhook-signature`. A URL on a private, loopback or link-local address is refused."""
    return await hooks.create_endpoint(actor, body)


@router.get("/webhook-endpoints")
async def list_endpoints(actor: CurrentActor, app_id: uuid.UUID | None = None) -> list[EndpointOut]:
    return await hooks.list_endpoints(actor, app_id=app_id)


@router.get("/webhook-endpoints/{endpoint_id}")
async def get_endpoint(endpoint_id: uuid.UUID, actor: CurrentActor) -> EndpointOut:
    return await hooks.get_endpoint(actor, endpoint_id)


@router.patch("/webhook-endpoints/{endpoint_id}")
async def update_endpoint(endpoint_id: uuid.UUID, body: EndpointPatch, actor: CurrentActor) -> EndpointOut:
    """Change the URL, the event types or the description; `enabled: true` switches a disabled
    endpoint back on (replay what failed meanwhile with POST …/replay)."""
    return await hooks.update_endpoint(actor, endpoint_id, body)


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: uuid.UUID, actor: CurrentActor) -> Response:
    await hooks.delete_endpoint(actor, endpoint_id)
    return Response(status_code=204)


@router.get("/webhook-endpoints/{endpoint_id}/secret")
async def endpoint_secret(endpoint_id: uuid.UUID, actor: CurrentActor) -> SecretOut:
    return await hooks.endpoint_secret(actor, endpoint_id)


@router.post("/webhook-endpoints/{endpoint_id}/secret/rotate")
async def rotate_secret(
    endpoint_id: uuid.UUID, actor: CurrentActor, body: RotateIn | None = None
) -> SecretOut:
    """A new secret. For `overlap_seconds` (default 24 h) every delivery is signed with both the new
    and the old secret, so your receiver can switch without missing an event; 0 stops the old one now."""
    overlap = body.overlap_seconds if body is not None else RotateIn().overlap_seconds
    return await hooks.rotate_secret(actor, endpoint_id, overlap_seconds=overlap)


@router.post("/webhook-endpoints/{endpoint_id}/test", status_code=202)
async def send_test_event(endpoint_id: uuid.UUID, actor: CurrentActor) -> DeliveryOut:
    """Send a `webhook.test` event now; follow it in the delivery log."""
    return await hooks.send_test_event(actor, endpoint_id)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries")
async def list_deliveries(
    endpoint_id: uuid.UUID,
    actor: CurrentActor,
    status: DeliveryStatus | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> DeliveryPage:
    """The delivery log, newest first: status, attempts, the last answer."""
    return await hooks.list_deliveries(actor, endpoint_id, status=status, before_id=before_id, limit=limit)


@router.post("/webhook-endpoints/{endpoint_id}/replay", status_code=202)
async def replay_failed(endpoint_id: uuid.UUID, body: ReplayIn, actor: CurrentActor) -> ReplayOut:
    """Send again every delivery to this endpoint that failed since `since` (up to 1000 per call)."""
    return ReplayOut(replayed=await hooks.replay_failed(actor, endpoint_id, since=body.since))


@router.get("/webhook-deliveries/{delivery_id}")
async def get_delivery(delivery_id: int, actor: CurrentActor) -> DeliveryDetail:
    """One delivery with the exact payload and every attempt (status, latency, response excerpt)."""
    return await hooks.get_delivery(actor, delivery_id)


@router.post("/webhook-deliveries/{delivery_id}/replay", status_code=202)
async def replay_delivery(delivery_id: int, actor: CurrentActor) -> DeliveryOut:
    """Send this delivery again now, with the same webhook-id, signed afresh."""
    return await hooks.replay_delivery(actor, delivery_id)


@router.get("/apps/{app_id}/callback-secret")
async def callback_secret(app_id: uuid.UUID, actor: CurrentActor) -> SecretOut:
    """The secret that signs deliveries to a push's own `callback_url` (the app's endpoints have
    their own secrets)."""
    return await hooks.callback_secret(actor, app_id)


@router.post("/apps/{app_id}/callback-secret/rotate")
async def rotate_callback_secret(
    app_id: uuid.UUID, actor: CurrentActor, body: RotateIn | None = None
) -> SecretOut:
    overlap = body.overlap_seconds if body is not None else RotateIn().overlap_seconds
    return await hooks.rotate_callback_secret(actor, app_id, overlap_seconds=overlap)
