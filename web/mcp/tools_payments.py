"""Collecting: request a payment, read one, wait for it, list them. Each calls the use case the REST
API calls (core.payments.use_cases), as the key's actor."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from core.payments import use_cases
from core.payments.models import PaymentSource, PaymentStatus
from core.payments.schemas import AmountField, PaymentOut, PaymentPage, StkPushIn
from core.payments.service import TransactionFilter
from web.mcp.annotations import PROMPTS, READS
from web.mcp.context import current_actor
from web.mcp.errors import agent_tool, note_target

# Below a reverse proxy's usual 60 s read timeout, so a wait never dies as a 504 (deploy/nginx).
MAX_WAIT_SECONDS = 55
DEFAULT_WAIT_SECONDS = 30
# A host that asked for progress hears about the wait this often: a person watching sees it is still
# waiting on the customer, not stuck.
PROGRESS_EVERY_SECONDS = 1.0

Phone = Annotated[
    str, Field(description="The customer's M-Pesa phone: 07…, 01…, +254… or 254…", max_length=20)
]
PaymentId = Annotated[
    uuid.UUID, Field(description="The payment's id, as request_payment or list_payments gave it")
]


@agent_tool
async def request_payment(
    phone: Phone,
    # The REST API's amount type: the same refusal, in the same words, for 0, 1.5 or "ten".
    amount: Annotated[AmountField, Field(description="Whole shillings, 1 to 250 000 (no cents)")],
    reference: Annotated[
        str | None, Field(description="Account reference shown in the prompt, at most 12 characters")
    ] = None,
    name: Annotated[str | None, Field(description="The customer's name, for the customer book")] = None,
    description: Annotated[
        str | None, Field(description="Transaction description, at most 13 characters")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Field(
            description="Your own unique label for this request (1 to 255 characters). Calling again with "
            "the same key returns the first payment instead of prompting the customer twice: always send one."
        ),
    ] = None,
) -> PaymentOut:
    """Send an M-Pesa payment prompt (STK push) to a customer's phone. Returns the payment `pending`:
    the prompt was sent, NOT paid yet. Call wait_for_payment with its id to learn how it ended. A test
    key (lp_test_) prompts the simulator only, never a real phone: see the resource
    lipapush://guides/test-mode-magic-numbers for numbers that end each way."""
    body = StkPushIn.model_validate(
        {"phone": phone, "amount": amount, "reference": reference, "name": name, "description": description}
    )
    payment = await use_cases.request_payment(
        current_actor(),
        phone=body.phone,
        amount=body.amount,
        name=body.name,
        reference=body.reference,
        description=body.description,
        idempotency_key=idempotency_key,
    )
    note_target(payment.id)
    return payment


@agent_tool
async def get_payment(payment_id: PaymentId) -> PaymentOut:
    """One payment of this business, as it is now (status pending, success, failed, cancelled, timeout,
    expired or reversed; `receipt` is the M-Pesa receipt once paid)."""
    note_target(payment_id)
    return await use_cases.get_payment(current_actor(), payment_id)


@agent_tool
async def wait_for_payment(
    payment_id: PaymentId,
    timeout_seconds: Annotated[
        int,
        Field(ge=1, le=MAX_WAIT_SECONDS, description=f"How long to wait at most (1 to {MAX_WAIT_SECONDS} s)"),
    ] = DEFAULT_WAIT_SECONDS,
    ctx: Context | None = None,
) -> PaymentOut:
    """Wait until the payment is final (the customer paid, declined, or the prompt timed out), or until
    timeout_seconds pass, and return it as it is then. Still `pending` after the wait: call again; a
    customer has about a minute to answer the prompt, and a lost answer is settled within minutes.
    Sends progress notifications while it waits when the request asks for them."""
    note_target(payment_id)
    actor = current_actor()
    started = time.monotonic()
    deadline = started + timeout_seconds
    told = started
    pause = 0.25
    while True:
        payment = await use_cases.get_payment(actor, payment_id)
        now = time.monotonic()
        left = deadline - now
        if payment.status.is_final or left <= 0:
            return payment
        if ctx is not None and now - told >= PROGRESS_EVERY_SECONDS:
            told = now
            waited = int(now - started)
            await ctx.report_progress(
                waited, timeout_seconds, f"Still pending after {waited} s: the customer has not answered yet."
            )
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 1.5, 2.0)


@agent_tool
async def list_payments(
    status: PaymentStatus | None = None,
    source: Annotated[PaymentSource | None, Field(description="Where the request came from")] = None,
    phone: Annotated[str | None, Field(description="A part of the phone number", max_length=20)] = None,
    created_from: Annotated[
        datetime | None, Field(description="ISO 8601, e.g. 2026-12-01T00:00:00+03:00")
    ] = None,
    created_to: datetime | None = None,
    channel_id: Annotated[uuid.UUID | None, Field(description="Only payments through this channel")] = None,
    cursor: Annotated[
        str | None, Field(description="next_cursor of the previous page", max_length=200)
    ] = None,
    limit: Annotated[int, Field(ge=1, le=100)] = 20,
) -> PaymentPage:
    """This business's payments, newest first, with the REST API's filters; `next_cursor` fetches the
    next page. A test key sees test payments only, a live key live ones."""
    filters = TransactionFilter(
        status=status,
        source=source,
        phone=phone,
        created_from=created_from,
        created_to=created_to,
        channel_id=channel_id,
    )
    return await use_cases.list_payments(current_actor(), filters=filters, cursor=cursor, limit=limit)


def register(server: MCPServer) -> None:
    server.add_tool(request_payment, annotations=PROMPTS)
    server.add_tool(get_payment, annotations=READS)
    server.add_tool(wait_for_payment, annotations=READS)
    server.add_tool(list_payments, annotations=READS)
