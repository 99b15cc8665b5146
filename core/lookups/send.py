"""Sending a lookup to Daraja, in a job after the transaction that recorded it.

The lookup row is committed first (so an answer that beats our second transaction finds it, after the
inbox's retry), then Daraja is asked, then its synchronous answer (the ConversationID the result will
name, or a refusal) is written in a second transaction. Both queries are read-only, so the client may
retry one on a transient failure; a lookup that never hears back is timed out by the sweep
(core/lookups/jobs.py)."""

from __future__ import annotations

import logging
import uuid

from pydantic import ValidationError

from core.daraja.app import InitiatorCredentials
from core.daraja.errors import DarajaError
from core.daraja.money_out import AccountBalanceRequest, RequestAccepted, TransactionStatusRequest
from core.db import Scope, narrow_scope, utcnow
from core.errors import LipapushError
from core.jobs.registry import job
from core.lookups.models import Lookup, LookupKind, LookupStatus
from core.lookups.proof import apply_balance_answer
from core.retry import retrying
from core.runtime import runtime, unit_of_work
from core.tenants.initiators import answer_urls, initiator_credentials
from core.tenants.models import MpesaChannel

log = logging.getLogger(__name__)

# A lookup's job carries only its id: whose it is, is what its first read finds out.
FIND_LOOKUP = Scope.platform("lookups.send_lookup: the business of a lookup")

Request = AccountBalanceRequest | TransactionStatusRequest


def build_request(lookup: Lookup, channel: MpesaChannel) -> Request:
    settings = runtime().settings
    if lookup.kind is LookupKind.balance:
        result_url, timeout_url = answer_urls(channel, "balance", settings=settings)
        return AccountBalanceRequest(result_url=result_url, timeout_url=timeout_url, remarks="Balance")
    result_url, timeout_url = answer_urls(channel, "status", settings=settings)
    if lookup.payout_id is not None:
        # A payout is asked about by the OriginatorConversationID it was sent with: its receipt is
        # what we do not know.
        return TransactionStatusRequest(
            result_url=result_url,
            timeout_url=timeout_url,
            original_conversation_id=lookup.transaction_id,
            remarks="Payout status",
        )
    return TransactionStatusRequest(
        result_url=result_url, timeout_url=timeout_url, transaction_id=lookup.transaction_id, remarks="Status"
    )


async def record_refusal(lookup: Lookup, *, message: str, code: str | None) -> None:
    """The lookup failed before Daraja took it: it says why, and a balance check says so about its
    channel's initiator."""
    lookup.status = LookupStatus.failed
    lookup.result_code = code
    lookup.result_desc = message
    lookup.finished_at = utcnow()


@job("lookups.send_lookup", max_retries=0)
async def send_lookup(lookup_id: str) -> None:
    rt = runtime()
    wanted = uuid.UUID(lookup_id)

    async def prepare() -> tuple[uuid.UUID, LookupKind, InitiatorCredentials, Request] | None:
        async with unit_of_work(scope=FIND_LOOKUP) as session:
            lookup = await session.get(Lookup, wanted, with_for_update=True)
            if lookup is None or lookup.status is not LookupStatus.pending or lookup.conversation_id:
                return None
            await narrow_scope(session, lookup.tenant_id)
            channel = await session.get(MpesaChannel, lookup.channel_id)
            assert channel is not None
            try:
                # The lookup's own mode: a channel switched between test and live since it was asked
                # never sends a test question to production, nor a live one to a stand-in.
                creds = initiator_credentials(channel, box=rt.secrets, settings=rt.settings, mode=lookup.mode)
                request = build_request(lookup, channel)
            except (LipapushError, DarajaError, ValidationError, ValueError) as exc:
                message = getattr(exc, "message", None) or str(exc)
                await record_refusal(lookup, message=f"Not sent to M-Pesa: {message}", code=None)
                if lookup.kind is LookupKind.balance:
                    await apply_balance_answer(
                        session,
                        lookup,
                        ok=False,
                        code=None,
                        message=f"The balance check was not sent: {message}",
                    )
                return None
            return lookup.tenant_id, lookup.kind, creds, request

    ready = await retrying(prepare, what=f"prepare lookup {lookup_id}")
    if ready is None:
        return
    tenant_id, kind, creds, request = ready
    client = rt.daraja()
    accepted: RequestAccepted | None = None
    refusal: DarajaError | ValueError | None = None
    try:
        if isinstance(request, AccountBalanceRequest):
            accepted = await client.account_balance(creds, request)
        else:
            accepted = await client.transaction_status(creds, request)
    except (DarajaError, ValueError) as exc:
        log.info("lookup %s not taken by Daraja: %s", lookup_id, exc)
        refusal = exc

    async def record() -> None:
        async with unit_of_work(scope=Scope.tenant(tenant_id)) as session:
            lookup = await session.get(Lookup, wanted, with_for_update=True)
            if lookup is None:
                return
            if accepted is not None:
                lookup.conversation_id = accepted.conversation_id
                lookup.originator_conversation_id = accepted.originator_conversation_id
                return
            if lookup.status is not LookupStatus.pending:
                return
            message = getattr(refusal, "message", None) or str(refusal)
            await record_refusal(
                lookup,
                message=f"M-Pesa refused the request: {message}",
                code=getattr(refusal, "error_code", None),
            )
            if kind is LookupKind.balance:
                await apply_balance_answer(
                    session,
                    lookup,
                    ok=False,
                    code=None,
                    message=f"M-Pesa refused the balance check: {message}",
                )

    await retrying(record, what=f"record Daraja's answer to lookup {lookup_id}")
