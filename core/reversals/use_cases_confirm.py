"""A reversal in two steps for callers acting on someone else's word (an AI agent through MCP).

A reversal already needs the owner's code (core.reversals.use_cases): whoever asks must have the
owner's inbox or chat. An agent's first step asks for the reversal (the code goes to the owner) and
also gets a confirmation token bound to its key and to that reversal; its second step needs both the
token and the code the owner reads out. So an agent can never reverse a payment on its own: its person
must hand it the code, and another key cannot finish what this one started.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.confirmations import service as confirmations
from core.confirmations.models import ConfirmAction
from core.reversals.schemas import ReversalOut
from core.reversals.service import CODE_TTL
from core.reversals.use_cases import confirm_reversal, start_reversal

NEXT_STEP = (
    "Nothing was sent to M-Pesa. A 6-digit code went to the business's owner ({where}). If the owner "
    "wants this reversal, ask them for the code and call again with confirmation_token and code."
)


class PreparedReversal(BaseModel):
    reversal: ReversalOut
    code_sent_to: list[str]
    confirmation_token: str
    expires_at: datetime
    next_step: str


@use_case(
    Permission.reversals_request,
    recorded_by="the reversal.requested audit row of start_reversal; the token row names the reversal",
)
async def prepare_reversal(actor: Actor, payment_id: uuid.UUID, *, reason: str) -> PreparedReversal:
    started = await start_reversal(actor, payment_id, reason=reason)
    async with unit_of_work(actor) as uow:
        # As long as the owner's code: a token outliving it could only ever be refused.
        row, token = await confirmations.issue(
            uow.session,
            actor,
            action=ConfirmAction.reversal,
            payload={"reversal_id": str(started.reversal.id)},
            ttl=CODE_TTL,
        )
    where = ", ".join(started.code_sent_to) or "no contact on record: the owner must add an email"
    return PreparedReversal(
        reversal=started.reversal,
        code_sent_to=started.code_sent_to,
        confirmation_token=token,
        expires_at=row.expires_at,
        next_step=NEXT_STEP.format(where=where),
    )


@use_case(
    Permission.reversals_request,
    recorded_by="confirm_reversal's reversal.confirmed or reversal.code_refused audit row",
)
async def confirm_prepared_reversal(actor: Actor, token: str, *, code: str) -> ReversalOut:
    """The token and the owner's code: the reversal goes to M-Pesa. A wrong code leaves the token
    valid (the reversal counts the tries); a right one spends it."""
    async with unit_of_work(actor, readonly=True) as uow:
        row = await confirmations.check(uow.session, actor, action=ConfirmAction.reversal, token=token)
    reversal = await confirm_reversal(actor, uuid.UUID(row.payload["reversal_id"]), code=code)
    async with unit_of_work(actor) as uow:
        if not await confirmations.mark_used(uow.session, row, result_id=str(reversal.id)):
            raise confirmations.ConfirmationUsed(
                f"This confirmation token was already used for reversal {reversal.id}: look it up instead.",
                result_id=str(reversal.id),
            )
    return reversal
