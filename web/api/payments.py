from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from core.exports.use_cases import export_transactions as export_transactions_uc
from core.payments import use_cases
from core.payments.models import PaymentSource, PaymentStatus
from core.payments.schemas import PaymentOut, PaymentPage, StkPushIn
from core.payments.service import TransactionFilter
from core.tenants.models import Mode
from web.deps import CurrentActor
from web.exports import xlsx_response
from web.openapi import PUSH_ERRORS

router = APIRouter(tags=["payments"])


@router.post("/stk-push", status_code=201, responses=PUSH_ERRORS)
async def stk_push(
    body: StkPushIn,
    actor: CurrentActor,
    idempotency_key: Annotated[
        str | None,
        # Checked by core with its own message; declared here so clients see the limit.
        Header(alias="Idempotency-Key", json_schema_extra={"minLength": 1, "maxLength": 255}),
    ] = None,
) -> PaymentOut:
    """Send an M-Pesa prompt to the customer's phone. The result arrives by callback: poll
    GET /api/transactions/{id} or watch the dashboard. Repeat with the same Idempotency-Key to retry
    safely: the first payment is returned instead of a second prompt.

    Limits (429 with Retry-After, the body's `limit` naming which): an API key may start
    `STK_PUSHES_PER_KEY_PER_MINUTE` pushes a minute (default 120), and one business may prompt one phone
    `STK_PUSHES_PER_PHONE_PER_MINUTE` times a minute (default 5). A replay with the same Idempotency-Key
    sends no prompt and counts against neither.

    `callback_url` (optional, an app's API key only): this payment's events also go there, signed with
    the app's callback secret; its host must be one of the app's `callback_hosts`."""
    return await use_cases.request_payment(
        actor,
        phone=body.phone,
        amount=body.amount,
        name=body.name,
        reference=body.reference,
        description=body.description,
        idempotency_key=idempotency_key,
        callback_url=body.callback_url,
    )


ChannelParam = Annotated[
    uuid.UUID | None,
    Query(
        description="Only payments through this channel of the business (GET /api/channels); "
        "another business's channel is 404"
    ),
]


def _filters(
    status: PaymentStatus | None,
    source: PaymentSource | None,
    phone: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    channel_id: uuid.UUID | None,
) -> TransactionFilter:
    return TransactionFilter(
        status=status,
        source=source,
        phone=phone,
        created_from=created_from,
        created_to=created_to,
        channel_id=channel_id,
    )


@router.get("/transactions")
async def list_transactions(
    actor: CurrentActor,
    status: PaymentStatus | None = None,
    source: PaymentSource | None = None,
    phone: Annotated[str | None, Query(max_length=20, description="phone fragment")] = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    mode: Annotated[
        Mode | None,
        Query(description="test or live only; an API key always sees its own mode's payments alone"),
    ] = None,
    channel_id: ChannelParam = None,
) -> PaymentPage:
    filters = _filters(status, source, phone, created_from, created_to, channel_id)
    return await use_cases.list_payments(
        actor,
        filters=dataclasses.replace(filters, mode=mode),
        cursor=cursor,
        limit=limit,
    )


@router.get("/transactions/export-excel", response_class=StreamingResponse)
async def export_transactions(
    actor: CurrentActor,
    status: PaymentStatus | None = None,
    source: PaymentSource | None = None,
    phone: Annotated[str | None, Query(max_length=20)] = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    channel_id: ChannelParam = None,
) -> StreamingResponse:
    """The list's payments as .xlsx, with the same filters (no pages)."""
    filters = _filters(status, source, phone, created_from, created_to, channel_id)
    return xlsx_response(await export_transactions_uc(actor, filters=filters))


@router.get("/transactions/{payment_id}")
async def get_transaction(payment_id: uuid.UUID, actor: CurrentActor) -> PaymentOut:
    return await use_cases.get_payment(actor, payment_id)
