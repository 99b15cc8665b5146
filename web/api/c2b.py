"""/api routes of core.c2b: customers paying a channel's till or paybill straight (docs/c2b.md).

Who may is core/c2b/use_cases.py's to say: changing C2B is the owner's (an API key: business:write),
reading it the owner's and manager's (business:read). Another business's channel is 404."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from core.c2b import use_cases
from core.c2b.schemas import (
    REFERENCE_MAX,
    C2BAccountOut,
    C2BAccountsIn,
    C2BAccountsOut,
    C2BDecisionOut,
    C2BPaymentOut,
    C2BRegisteredOut,
    C2BRegisterIn,
    C2BSettingsIn,
    C2BStateOut,
)
from web.deps import CurrentActor
from web.openapi import ErrorOut

router = APIRouter(tags=["c2b"])

REGISTER_ERRORS: dict[int | str, dict[str, object]] = {
    409: {
        "model": ErrorOut,
        "description": "`c2b_urls_already_registered`: M-Pesa (production) already holds URLs for the short "
        "code, delete them on the Daraja portal first; `conflict`: a B2C channel; `mode_mismatch`: a key "
        "of the other mode. Nothing was recorded",
    },
    502: {"model": ErrorOut, "description": "M-Pesa (Daraja) refused the registration: `detail` says why"},
}


@router.get("/c2b")
async def c2b_overview(actor: CurrentActor) -> list[C2BStateOut]:
    """C2B on every channel of the business that collects (paybills and tills), the primary first."""
    return await use_cases.c2b_overview(actor)


@router.get("/channels/{channel_id}/c2b")
async def c2b_state(channel_id: uuid.UUID, actor: CurrentActor) -> C2BStateOut:
    """Where C2B stands on one channel: registered or not (and through which version), the URLs M-Pesa
    is given, validation and its accounts rule, and notes saying what to do next."""
    return await use_cases.c2b_state(actor, channel_id)


@router.post("/channels/{channel_id}/c2b/register", responses=REGISTER_ERRORS)
async def register_urls(
    channel_id: uuid.UUID, actor: CurrentActor, body: C2BRegisterIn | None = None
) -> C2BRegisteredOut:
    """Register this channel's confirmation and validation URLs with M-Pesa (Daraja's registerurl), so
    payments made straight to its short code are recorded (source `c2b`). `version` v1 (default) sends
    the payer's full number, v2 a masked one. Production takes one registration per short code: a
    second answers 409 `c2b_urls_already_registered`, saying how to remove the old URLs. A test channel
    (simulator, sandbox) reaches only the simulator or the sandbox."""
    return await use_cases.register_urls(actor, channel_id, body or C2BRegisterIn())


@router.patch("/channels/{channel_id}/c2b")
async def change_settings(channel_id: uuid.UUID, body: C2BSettingsIn, actor: CurrentActor) -> C2BStateOut:
    """Validation on or off and the accounts rule (`known_references`, or null for any account number).
    Off by default: Safaricom must enable external validation for the short code (email
    apisupport@safaricom.co.ke); until it does M-Pesa never asks, whatever is set here."""
    return await use_cases.change_c2b_settings(actor, channel_id, body)


@router.get("/channels/{channel_id}/c2b/accounts")
async def list_accounts(channel_id: uuid.UUID, actor: CurrentActor) -> list[C2BAccountOut]:
    """The account numbers the known_references rule accepts (at most 500 shown, in order)."""
    return await use_cases.list_c2b_accounts(actor, channel_id)


@router.post("/channels/{channel_id}/c2b/accounts", status_code=201)
async def add_accounts(channel_id: uuid.UUID, body: C2BAccountsIn, actor: CurrentActor) -> C2BAccountsOut:
    """List account numbers customers may pay with (an invoice, a student or meter number). One already
    listed, ignoring case and spaces, is left as it was."""
    return await use_cases.add_c2b_accounts(actor, channel_id, body)


@router.delete("/channels/{channel_id}/c2b/accounts/{reference}", status_code=204)
async def remove_account(
    channel_id: uuid.UUID,
    reference: Annotated[str, Path(min_length=1, max_length=REFERENCE_MAX)],
    actor: CurrentActor,
) -> None:
    await use_cases.remove_c2b_account(actor, channel_id, reference)


@router.get("/channels/{channel_id}/c2b/decisions")
async def list_decisions(
    channel_id: uuid.UUID,
    actor: CurrentActor,
    accepted: Annotated[bool | None, Query(description="only accepted (true) or refused (false)")] = None,
    before_id: Annotated[int | None, Query(ge=1, description="the last id of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[C2BDecisionOut]:
    """Every validation answer and every confirmation that was not recorded, newest first, with the
    reason: why a customer's payment was refused."""
    return await use_cases.list_c2b_decisions(
        actor, channel_id, accepted=accepted, before_id=before_id, limit=limit
    )


@router.get("/c2b/payments/{payment_id}")
async def c2b_payment(payment_id: uuid.UUID, actor: CurrentActor) -> C2BPaymentOut:
    """A C2B payment's own facts beside GET /api/transactions/{id}: the account number in full, the
    amount to the cent, the number as M-Pesa sent it, the business's M-Pesa balance after it."""
    return await use_cases.get_c2b_payment(actor, payment_id)
