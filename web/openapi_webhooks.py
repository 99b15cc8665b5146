"""The events lipapush POSTs to a developer's endpoints, in the OpenAPI document's 3.1 `webhooks`
section: one operation per event type, with its body and the three Standard Webhooks headers, so
/docs (under "Webhooks") and any OpenAPI tool show a receiver exactly what arrives.

The envelope is core.webhooks.signing.event_body's; `data` is what core.webhooks.events.payment_data
and core.webhooks.subscribers put there (the API's own PaymentOut, VoucherOut and PayoutOut, plus
`mode`), and
the test event's data is core.webhooks.service.send_test's. tests/web/test_openapi_webhooks.py checks
bodies built by that code against these schemas, so the two cannot drift apart.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, Header, Response
from pydantic import BaseModel, Field, create_model

from core.hotspot.schemas import VoucherOut
from core.payments.schemas import PaymentOut
from core.payouts.schemas import PayoutOut
from core.reversals.schemas import ReversalOut
from core.tenants.models import Mode
from core.webhooks.events import (
    EVENT_TYPES,
    PAYMENT_CANCELLED,
    PAYMENT_EXPIRED,
    PAYMENT_FAILED,
    PAYMENT_FLAGGED,
    PAYMENT_SUCCEEDED,
    PAYOUT_FAILED,
    PAYOUT_SUCCEEDED,
    REVERSAL_FAILED,
    REVERSAL_SUCCEEDED,
    VOUCHER_ISSUED,
    WEBHOOK_TEST,
)

_MODE = "test: a simulator or sandbox payment, never real money; live: production"


class PaymentEventData(PaymentOut):
    """The payment as GET /api/transactions/{id} returns it."""

    # Always present in an event (PaymentOut's defaults serve objects built by hand).
    mode: Mode = Field(description=_MODE)
    channel_id: uuid.UUID | None = Field(
        description="The business's M-Pesa channel (GET /api/channels) the payment went through"
    )


class VoucherEventData(VoucherOut):
    """The voucher as the hotspot API lists it, and the payment that bought it."""

    payment_id: uuid.UUID = Field(description="The payment that bought it (GET /api/transactions/{id})")
    mode: Mode = Field(description=_MODE)


class PayoutEventData(PayoutOut):
    """The payout as GET /api/payouts/{id} returns it."""


class ReversalEventData(ReversalOut):
    """The reversal as GET /api/reversals/{id} returns it."""


class TestEventData(BaseModel):
    """What "send test event" (POST /api/webhook-endpoints/{id}/test) carries."""

    endpoint_id: uuid.UUID = Field(description="The endpoint it was sent to")
    mode: Mode = Field(description="The endpoint's mode")
    message: str


TEST_EVENT_DOC = (
    "Sent only by POST /api/webhook-endpoints/{id}/test, only to that endpoint: check your receiver."
)
_CREATED_AT = "When it happened (UTC, ISO 8601), not when this attempt was sent"
_VERSION = (
    "This object's own event counter (1, 2, …): events may arrive out of order, so drop one whose "
    "version is lower than one already applied for the same data.id"
)

HEADERS = {
    "webhook_id": (
        "webhook-id",
        "The event's id (msg_…): the same on every retry, so handle each id once",
    ),
    "webhook_timestamp": (
        "webhook-timestamp",
        "Unix seconds of this attempt: refuse one more than 300 seconds off your clock",
    ),
    "webhook_signature": (
        "webhook-signature",
        'One "v1,<base64 HMAC-SHA256 of {webhook-id}.{webhook-timestamp}.{raw body}>" per active secret '
        "(keyed with the base64-decoded part of whsec_… after the prefix), space-separated: accept the "
        "delivery if any one matches, compared in constant time",
    ),
}

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Any 2xx within 15 seconds: delivered"},
    410: {"description": "Gone: lipapush switches the endpoint off and sends it nothing more"},
    "default": {
        "description": "Anything else, a redirect or no answer in 15 seconds: tried again 5 s, 5 min, "
        "30 min, 2 h, 5 h, 10 h and 10 h after each failure, with the same webhook-id "
        "(Retry-After on a 429 or 5xx makes a wait longer)"
    },
}


def _class_name(event_type: str) -> str:
    return "".join(part.capitalize() for part in event_type.split(".")) + "Event"


def _describe(event_type: str) -> str:
    return EVENT_TYPES.get(event_type) or TEST_EVENT_DOC


def event_model(event_type: str, data: type[BaseModel], *, versioned: bool = True) -> type[BaseModel]:
    """The body of one event type: `{"type", "created_at", "version", "data"}` (minified JSON)."""
    fields: dict[str, Any] = {
        "type": (Literal[event_type], Field(description="The event type")),  # type: ignore[valid-type]
        "created_at": (datetime, Field(description=_CREATED_AT)),
    }
    if versioned:
        fields["version"] = (int, Field(ge=1, description=_VERSION))
    fields["data"] = (data, ...)
    return create_model(_class_name(event_type), __doc__=_describe(event_type), **fields)


# What each operation's one line in /docs says (its name is the event type).
SUMMARIES = {
    PAYMENT_SUCCEEDED: "The customer paid",
    PAYMENT_FAILED: "M-Pesa refused or could not complete the payment",
    PAYMENT_CANCELLED: "The customer cancelled the prompt",
    PAYMENT_EXPIRED: "M-Pesa never gave an outcome: not paid",
    PAYMENT_FLAGGED: "M-Pesa reported something that disagrees with the request",
    VOUCHER_ISSUED: "A WiFi voucher was sold",
    PAYOUT_SUCCEEDED: "M-Pesa paid a payout",
    PAYOUT_FAILED: "A payout was not paid, or its outcome is unknown",
    REVERSAL_SUCCEEDED: "A received payment went back to the payer",
    REVERSAL_FAILED: "A reversal did not go through, or its outcome is unknown",
    WEBHOOK_TEST: "The test event you asked for",
}

# Every event type and its body, in the order a developer meets them.
EVENTS: dict[str, type[BaseModel]] = {
    PAYMENT_SUCCEEDED: event_model(PAYMENT_SUCCEEDED, PaymentEventData),
    PAYMENT_FAILED: event_model(PAYMENT_FAILED, PaymentEventData),
    PAYMENT_CANCELLED: event_model(PAYMENT_CANCELLED, PaymentEventData),
    PAYMENT_EXPIRED: event_model(PAYMENT_EXPIRED, PaymentEventData),
    PAYMENT_FLAGGED: event_model(PAYMENT_FLAGGED, PaymentEventData),
    VOUCHER_ISSUED: event_model(VOUCHER_ISSUED, VoucherEventData),
    PAYOUT_SUCCEEDED: event_model(PAYOUT_SUCCEEDED, PayoutEventData),
    PAYOUT_FAILED: event_model(PAYOUT_FAILED, PayoutEventData),
    REVERSAL_SUCCEEDED: event_model(REVERSAL_SUCCEEDED, ReversalEventData),
    REVERSAL_FAILED: event_model(REVERSAL_FAILED, ReversalEventData),
    WEBHOOK_TEST: event_model(WEBHOOK_TEST, TestEventData, versioned=False),
}


def _receiver(event_type: str, model: type[BaseModel]) -> Callable[..., None]:
    """A stand-in for the developer's endpoint: FastAPI documents its signature, it never runs."""

    def receive(**_: Any) -> None:
        raise NotImplementedError("documentation only: lipapush sends this request, it does not serve it")

    headers = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[str, Header(alias=alias, description=description)],
        )
        for name, (alias, description) in HEADERS.items()
    ]
    body = inspect.Parameter("event", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[model, Body()])
    receive.__signature__ = inspect.Signature([body, *headers])  # type: ignore[attr-defined]
    receive.__name__ = "webhook_" + event_type.replace(".", "_")
    return receive


def install_webhook_docs(app: FastAPI) -> None:
    """Describe every event type under the OpenAPI document's `webhooks`."""
    for event_type, model in EVENTS.items():
        description = _describe(event_type)
        app.webhooks.add_api_route(
            event_type,
            _receiver(event_type, model),
            methods=["POST"],
            summary=SUMMARIES[event_type],
            description=f"{description}\n\nVerify the signature on the raw body before trusting it: "
            "the developer guides at /docs/guides show how in Python, Node.js and PHP.",
            operation_id="webhook_" + event_type.replace(".", "_"),
            tags=["webhook events"],
            response_class=Response,  # what the receiver answers has no body lipapush reads
            responses=RESPONSES,
            response_description=RESPONSES[200]["description"],
        )
