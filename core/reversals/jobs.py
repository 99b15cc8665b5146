"""Sending a confirmed reversal to M-Pesa, once.

Daraja has no idempotency key for a reversal, so it is never sent twice by us: an attempt whose answer
was lost (a timeout, a worker that died mid-call) ends the reversal as `timeout`, and the owner checks
the M-Pesa statement before asking again (a second request for a reversed receipt is refused by M-Pesa
with R000001 "already reversed", which then marks the payment reversed: core.reversals.answers)."""

from __future__ import annotations

import uuid

from core.daraja.errors import DarajaError, DarajaTransientError
from core.daraja.money_out import ReversalRequest
from core.db import Scope, utcnow
from core.jobs.registry import job
from core.reversals import service
from core.reversals.models import Reversal, ReversalStatus
from core.runtime import runtime, unit_of_work
from core.tenants.initiators import answer_urls, initiator_credentials
from core.tenants.models import MpesaChannel

LOST = (
    "M-Pesa did not say whether it took the reversal. Check the M-Pesa statement for the receipt: if the "
    "money is still there, ask for the reversal again."
)


@job("reversals.send", max_retries=0)
async def send_reversal(reversal_id: str) -> None:
    rt = runtime()
    rid = uuid.UUID(reversal_id)
    scope = Scope.platform("send a confirmed reversal")
    # Not ending the job: if this process dies during the call, the job's row brings it back, and the
    # attempt counted here makes the rerun stop short of a second request.
    async with unit_of_work(scope=scope, ends_job=False) as session:
        row = await session.get(Reversal, rid, with_for_update=True)
        if row is None or row.status is not ReversalStatus.pending or row.sent_at is not None:
            return
        if row.send_attempts > 0:
            await service.apply_result(
                session, reversal=row, succeeded=False, result_code=None, result_desc=LOST, timed_out=True
            )
            return
        row.send_attempts += 1
        channel = await session.get(MpesaChannel, row.channel_id)
        assert channel is not None
        creds = initiator_credentials(channel, box=rt.secrets, settings=rt.settings, mode=row.mode)
        result_url, timeout_url = answer_urls(channel, "reversal", settings=rt.settings)
        request = ReversalRequest(
            transaction_id=row.receipt,
            amount=row.amount,
            result_url=result_url,
            timeout_url=timeout_url,
            remarks=row.reason[:100].ljust(2, "."),
        )
    try:
        accepted = await rt.daraja().reversal(creds, request)
    except DarajaTransientError as exc:
        refused = None if exc.outcome_unknown else f"M-Pesa could not be reached: {exc}. Ask again later."
        await _finish(rid, refused or LOST, timed_out=refused is None)
        return
    except DarajaError as exc:
        await _finish(rid, f"M-Pesa refused the reversal: {exc}", timed_out=False)
        return
    async with unit_of_work(scope=scope) as session:
        row = await session.get(Reversal, rid, with_for_update=True)
        assert row is not None
        row.conversation_id = accepted.conversation_id
        row.originator_conversation_id = accepted.originator_conversation_id
        row.sent_at = utcnow()


async def _finish(reversal_id: uuid.UUID, desc: str, *, timed_out: bool) -> None:
    async with unit_of_work(scope=Scope.platform("a reversal M-Pesa did not take")) as session:
        row = await session.get(Reversal, reversal_id, with_for_update=True)
        if row is not None:
            await service.apply_result(
                session,
                reversal=row,
                succeeded=False,
                result_code=None,
                result_desc=desc,
                timed_out=timed_out,
            )
