from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from core.tenants.models import Mode
from core.webhooks.models import DeliveryStatus


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="Where to POST events: https, a public address (no redirects are followed)",
        examples=["https://shop.example.com/lipapush/webhooks"],
        json_schema_extra={"maxLength": 2048},
    )
    event_types: list[str] | None = Field(
        default=None,
        description="Event types to receive (GET /api/webhook-event-types); empty or left out: every type "
        "but payout.*, which come only when named (with the payouts:read scope)",
        examples=[["payment.succeeded", "payment.failed"]],
    )
    description: str | None = Field(default=None, json_schema_extra={"maxLength": 200})
    app_id: uuid.UUID | None = Field(
        default=None,
        description="The app whose events it receives (an API key: its own app; else the first app)",
    )


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, json_schema_extra={"maxLength": 2048})
    event_types: list[str] | None = None
    description: str | None = Field(default=None, json_schema_extra={"maxLength": 200})
    enabled: bool | None = Field(default=None, description="false stops deliveries; true starts them again")


class EndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    app_id: uuid.UUID
    mode: Mode
    url: str
    description: str | None
    event_types: list[str] = Field(description="Empty: every type but payout.* (named to be received)")
    enabled: bool
    disabled_reason: str | None = Field(description="Why lipapush switched it off (410 Gone, 5 days failing)")
    failing_since: datetime | None
    last_success_at: datetime | None
    created_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="whsec_…: verifies the webhook-signature header (Standard Webhooks)")


class SecretOut(BaseModel):
    secret: str
    previous_secret_expires_at: datetime | None = Field(
        default=None,
        description="Until then deliveries carry a second signature, made with the previous secret",
    )


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: int = Field(
        default=86400,
        ge=0,
        le=604800,
        description="How long the old secret keeps signing too (0: stop it now, for a leaked secret)",
    )


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    trigger: str = Field(description="scheduled (the retry schedule) or replay")
    outcome: str = Field(description="delivered, failed or gone")
    status_code: int | None
    latency_ms: int | None
    response_excerpt: str | None
    error: str | None
    attempted_at: datetime


class DeliveryOut(BaseModel):
    id: int
    message_id: str = Field(description="The webhook-id header: the same on every attempt")
    event_type: str
    object_id: str
    version: int
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryDetail(DeliveryOut):
    payload: str = Field(description="The exact body every attempt sent")
    attempt_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_before_id: int | None = Field(description="Pass as before_id for the next (older) page")


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="Send again every delivery to this endpoint that failed since then")


class ReplayOut(BaseModel):
    replayed: int


class EventTypeOut(BaseModel):
    type: str
    description: str
