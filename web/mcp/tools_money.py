"""Money out, in two steps (core.payouts.use_cases_confirm, core.reversals.use_cases_confirm): the
first call only summarises and returns a confirmation token; the second, with the token, does it.
Listed only to keys with payouts:write (core.agents.catalogue)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from mcp.server import MCPServer
from pydantic import BaseModel, Field

from core.errors import InvalidInput
from core.payouts import use_cases as payouts
from core.payouts.schemas import AmountField, PayoutIn, PayoutOut
from core.payouts.use_cases_confirm import PreparedPayout, confirm_payout, prepare_payout
from core.reversals.schemas import ReversalOut
from core.reversals.use_cases_confirm import PreparedReversal, confirm_prepared_reversal, prepare_reversal
from web.mcp.annotations import MOVES_MONEY, READS
from web.mcp.context import current_actor
from web.mcp.errors import agent_tool, note_target

Token = Annotated[
    str | None,
    Field(
        description="The confirmation_token the first call returned; leave out on the first call",
        max_length=64,
    ),
]


class PayoutStep(BaseModel):
    step: Literal["needs_confirmation", "sent"]
    prepared: PreparedPayout | None = Field(default=None, description="The first step's summary and token")
    payout: PayoutOut | None = Field(
        default=None, description="The payout, once confirmed (pending until M-Pesa answers)"
    )


class ReversalStep(BaseModel):
    step: Literal["needs_confirmation", "sent"]
    prepared: PreparedReversal | None = None
    reversal: ReversalOut | None = None


@agent_tool
async def get_payout(payout_id: uuid.UUID) -> PayoutOut:
    """One payout as it is now: pending until M-Pesa's result, then success (with the receipt and the
    recipient's registered name), failed (with M-Pesa's reason) or timeout."""
    note_target(payout_id)
    return await payouts.get_payout(current_actor(), payout_id)


@agent_tool
async def request_payout(
    phone: Annotated[
        str | None, Field(description="Recipient's M-Pesa phone (first call)", max_length=20)
    ] = None,
    amount: Annotated[
        AmountField | None, Field(description="Whole shillings, 10 to 250 000 (first call)")
    ] = None,
    name: Annotated[str | None, Field(description="Who you mean to pay")] = None,
    reference: Annotated[
        str | None, Field(description="Remarks sent to M-Pesa (2 to 100 characters)")
    ] = None,
    occasion: Annotated[str | None, Field(description="Occasion sent to M-Pesa")] = None,
    command: Annotated[
        Literal["business", "salary", "promotion"], Field(description="The kind of B2C payment")
    ] = "business",
    channel_id: Annotated[
        uuid.UUID | None, Field(description="The payout channel, when there are several")
    ] = None,
    idempotency_key: Annotated[str | None, Field(description="Your own unique label for this payout")] = None,
    confirmation_token: Token = None,
) -> PayoutStep:
    """Pay money out to an M-Pesa phone (B2C), in two calls. First call (phone, amount, …): nothing is
    sent; you get a summary and a confirmation_token valid 5 minutes. Show the summary to your person
    and only if they agree, call again with just confirmation_token: the payout is then recorded and sent
    exactly as summarised (`pending` until M-Pesa's result; follow it with get_payout). A token works
    once, for this key only."""
    actor = current_actor()
    if confirmation_token:
        payout = await confirm_payout(actor, confirmation_token)
        note_target(payout.id)
        return PayoutStep(step="sent", payout=payout)
    if phone is None or amount is None:
        raise InvalidInput(
            "amount" if phone else "phone",
            "Give phone and amount to prepare a payout, or confirmation_token to confirm a prepared one.",
        )
    data = PayoutIn.model_validate(
        {
            "phone": phone,
            "amount": amount,
            "name": name,
            "reference": reference,
            "occasion": occasion,
            "command": command,
            "channel_id": channel_id,
        }
    )
    return PayoutStep(
        step="needs_confirmation", prepared=await prepare_payout(actor, data, idempotency_key=idempotency_key)
    )


@agent_tool
async def reverse_payment(
    payment_id: Annotated[
        uuid.UUID | None, Field(description="The received payment to reverse (first call)")
    ] = None,
    reason: Annotated[
        str | None, Field(description="Why, 5 to 200 characters: it is audited", max_length=500)
    ] = None,
    confirmation_token: Token = None,
    code: Annotated[
        str | None,
        Field(description="The 6-digit code the business's owner received (second call)", max_length=20),
    ] = None,
) -> ReversalStep:
    """Reverse a received payment (its whole amount), in two calls. First call (payment_id, reason):
    nothing goes to M-Pesa; a 6-digit code goes to the business's owner and you get a
    confirmation_token. Second call: confirmation_token and the code, which only the owner can give
    you. The payment becomes `reversed` only when M-Pesa's result says so."""
    actor = current_actor()
    if confirmation_token:
        if not code:
            raise InvalidInput("code", "Give the 6-digit code the owner received, with confirmation_token.")
        reversal = await confirm_prepared_reversal(actor, confirmation_token, code=code)
        note_target(reversal.id)
        return ReversalStep(step="sent", reversal=reversal)
    if payment_id is None or not reason:
        raise InvalidInput(
            "reason" if payment_id else "payment_id",
            "Give payment_id and reason to ask for a reversal, or confirmation_token and code to "
            "confirm one.",
        )
    note_target(payment_id)
    return ReversalStep(
        step="needs_confirmation", prepared=await prepare_reversal(actor, payment_id, reason=reason)
    )


def register(server: MCPServer) -> None:
    server.add_tool(get_payout, annotations=READS)
    server.add_tool(request_payout, annotations=MOVES_MONEY)
    server.add_tool(reverse_payment, annotations=MOVES_MONEY)
