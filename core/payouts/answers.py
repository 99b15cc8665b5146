"""Daraja's answers about payouts, applied once from the inbox (core.mpesa_inbox): the B2C Result and
the QueueTimeOut notice.

A Result names its payout by the OriginatorConversationID we minted (B2C v3 echoes it), else by the
ConversationID of our accepted request; one that names neither, or a payout of another channel than
the URL it came to, waits for our own record (NotYetMatched: Daraja may answer before our transaction
ends), then is an orphan. One naming an OriginatorConversationID of our shape (lp_ and 32 hex) that no
payout has is an orphan at once: a payout's row is committed before anything is sent.

Applied exactly once: the payout's conditional UPDATE on status='pending' decides. A repeated Result
changes nothing ("duplicate"); one that disagrees with a final payout (another outcome, another
receipt) is recorded on the inbox row as a "conflict" and never applied; one that adds what a status
query could not (the recipient's flag, the balances) to a paid payout is "enriched". A QueueTimeOut is
not a failure (refs/daraja.md §7): it makes the reconciler ask M-Pesa at once.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.daraja.result_codes import describe_money_out_result
from core.daraja.results import B2CResult, parse_b2c_result, parse_queue_timeout
from core.db import narrow_scope, utcnow
from core.mpesa_inbox.kinds import CallbackKind
from core.mpesa_inbox.registry import NotYetMatched, handles
from core.payments.models import CallbackInbox
from core.payouts.models import Payout, PayoutStatus
from core.payouts.reconcile import check_soon
from core.payouts.service import Facts, payouts, public_name

log = logging.getLogger(__name__)

OURS = re.compile(r"lp_[0-9a-f]{32}")


class Orphan(Exception):
    """The answer names a payout that does not exist and never will."""


async def _find(
    session: AsyncSession, row: CallbackInbox, originator: str | None, conversation: str | None
) -> Payout:
    payout = await payouts.by_originator(session, originator) if originator else None
    if payout is None and conversation:
        payout = await payouts.by_conversation(session, conversation)
    if payout is None and originator and OURS.fullmatch(originator):
        # Ours by its shape, and our row is committed before any request goes out: no payout will
        # ever have this id, so waiting for one is pointless.
        raise Orphan(f"no payout has the OriginatorConversationID {originator}")
    if payout is None or payout.channel_id != row.channel_id:
        raise NotYetMatched(f"no payout of this channel is {originator or conversation}")
    await narrow_scope(session, payout.tenant_id)
    locked = await payouts.lock(session, payout.id)
    assert locked is not None
    return locked


def _facts(result: B2CResult) -> Facts:
    return Facts(
        receipt=result.receipt,
        recipient_name=public_name(result.receiver_public_name),
        recipient_registered=result.recipient_is_registered,
        utility_balance_cents=result.utility_account_available_cents,
        working_balance_cents=result.working_account_available_cents,
        charges_paid_balance_cents=result.charges_paid_account_available_cents,
        transaction_completed_at=result.completed_at,
        conversation_id=result.conversation_id,
    )


@handles(CallbackKind.b2c_result)
async def apply_result(session: AsyncSession, row: CallbackInbox, data: Any, settings: Settings) -> str:
    result = parse_b2c_result(data)
    try:
        payout = await _find(session, row, result.originator_conversation_id, result.conversation_id)
    except Orphan as exc:
        log.warning("B2C result on channel %s: %s", row.channel_id, exc)
        return "orphan"
    paid = result.outcome == "success"
    if paid and result.amount_cents is not None and result.amount_cents != payout.amount * 100:
        log.warning("B2C result for payout %s says %s cents", payout.id, result.amount_cents)
        return "rejected: amount differs"
    if payout.status is PayoutStatus.pending:
        if payout.sent_at is None:
            payout.sent_at = utcnow()  # a result proves Daraja took it, whatever our record of the POST
        status = PayoutStatus.success if paid else PayoutStatus.failed
        applied = await payouts.finalize(
            session,
            payout=payout,
            status=status,
            result_code=result.result_code,
            result_desc="Paid" if paid else describe_money_out_result(result.result_code),
            facts=_facts(result) if paid else Facts(conversation_id=result.conversation_id),
        )
        if applied:
            return "applied"
    if payout.status is PayoutStatus.success and paid:
        return await payouts.add_facts(session, payout=payout, facts=_facts(result))
    if payout.status is PayoutStatus.failed and not paid:
        return "duplicate"  # it agrees: not paid
    log.warning(
        "B2C result %s for payout %s, which is %s: recorded, not applied",
        result.result_code,
        payout.id,
        payout.status.value,
    )
    return f"conflict: payout is {payout.status.value}"


@handles(CallbackKind.b2c_timeout)
async def apply_queue_timeout(
    session: AsyncSession, row: CallbackInbox, data: Any, settings: Settings
) -> str:
    notice = parse_queue_timeout(data)
    try:
        payout = await _find(session, row, notice.originator_conversation_id, notice.conversation_id)
    except Orphan as exc:
        log.warning("B2C queue timeout on channel %s: %s", row.channel_id, exc)
        return "orphan"
    if payout.status is not PayoutStatus.pending:
        return "duplicate"
    # Daraja queued it, so it took the request: never send it again, ask how it ended.
    payout.sent_at = payout.sent_at or utcnow()
    if payout.conversation_id is None:
        payout.conversation_id = notice.conversation_id
    await check_soon(session, payout)
    return "applied"
