"""Daraja's answers to balance and status lookups, applied once from the inbox (core.mpesa_inbox).

A lookup is matched by the ConversationID of Daraja's synchronous answer (our requests carry no id
of ours), on the channel whose URL the answer came to; one we have not stored yet waits
(NotYetMatched: the answer can beat our second transaction). The answer is written on the lookup,
once: a second delivery finds it answered ("duplicate").

- A balance answer stores the accounts (cents) and proves or disproves the channel's initiator
  (core.lookups.proof).
- A status answer stores what M-Pesa says about the transaction. About a payout, it settles it
  (core.payouts.reconcile.apply_status_answer); about a payment or a receipt, it only reports: a
  payment's state is the STK reconciler's business.
- A QueueTimeOut ends the lookup as `timeout`; a payout's reconciler asks again at its next check.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.daraja.result_codes import describe_money_out_result
from core.daraja.results import (
    TransactionStatusResult,
    parse_account_balance_result,
    parse_queue_timeout,
    parse_transaction_status_result,
)
from core.db import narrow_scope
from core.lookups.models import Lookup, LookupKind, LookupStatus
from core.lookups.proof import apply_balance_answer
from core.lookups.service import lookups
from core.mpesa_inbox.kinds import CallbackKind
from core.mpesa_inbox.registry import NotYetMatched, handles
from core.payments.models import CallbackInbox
from core.payouts.reconcile import apply_status_answer

TIMED_OUT = "M-Pesa's queue timed out before it answered this question: ask again."


async def _find(
    session: AsyncSession, row: CallbackInbox, conversation: str | None, kind: LookupKind
) -> Lookup:
    lookup = await lookups.by_conversation(
        session, conversation_id=conversation, kind=kind, channel_id=row.channel_id
    )
    if lookup is None:
        raise NotYetMatched(f"no {kind.value} lookup of this channel is {conversation}")
    await narrow_scope(session, lookup.tenant_id)
    return lookup


@handles(CallbackKind.balance_result)
async def apply_balance(session: AsyncSession, row: CallbackInbox, data: Any, settings: Settings) -> str:
    result = parse_account_balance_result(data)
    lookup = await _find(session, row, result.conversation_id, LookupKind.balance)
    if lookup.status is not LookupStatus.pending:
        return "duplicate"
    ok = result.result_code == "0"
    working, utility = result.account("Working Account"), result.account("Utility Account")
    lookups.record_answer(
        lookup,
        status=LookupStatus.done if ok else LookupStatus.failed,
        result_code=result.result_code,
        result_desc="Done" if ok else describe_money_out_result(result.result_code),
        result={
            "accounts": [
                {
                    "name": a.name,
                    "currency": a.currency,
                    "available_cents": a.available_cents,
                    "uncleared_cents": a.uncleared_cents,
                    "reserved_cents": a.reserved_cents,
                }
                for a in result.accounts
            ]
        }
        if ok
        else None,
        answered_at=result.completed_at,
        working_cents=working.available_cents if working else None,
        utility_cents=utility.available_cents if utility else None,
    )
    await apply_balance_answer(
        session,
        lookup,
        ok=ok,
        code=result.result_code,
        message=f"M-Pesa refused the balance check: {describe_money_out_result(result.result_code)}",
    )
    return "applied"


def status_facts(result: TransactionStatusResult) -> dict[str, Any]:
    """What a status answer says, as the lookup keeps it (JSON)."""

    def when(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "transaction_status": result.transaction_status,
        "outcome": result.transaction_outcome,
        "receipt": result.receipt,
        "amount_cents": result.amount_cents,
        "debit_party_name": result.debit_party_name,
        "credit_party_name": result.credit_party_name,
        "debit_account_type": result.debit_account_type,
        "debit_party_charges": result.debit_party_charges,
        "reason_type": result.reason_type,
        "initiated_at": when(result.initiated_at),
        "finalised_at": when(result.finalised_at),
        "originator_conversation_id": result.queried_originator_conversation_id,
        "conversation_id": result.queried_conversation_id,
    }


@handles(CallbackKind.status_result)
async def apply_status(session: AsyncSession, row: CallbackInbox, data: Any, settings: Settings) -> str:
    result = parse_transaction_status_result(data)
    lookup = await _find(session, row, result.conversation_id, LookupKind.status)
    if lookup.status is not LookupStatus.pending:
        return "duplicate"
    ok = result.result_code == "0"
    lookups.record_answer(
        lookup,
        status=LookupStatus.done if ok else LookupStatus.failed,
        result_code=result.result_code,
        result_desc=f"M-Pesa says: {result.transaction_status or 'no status given'}"
        if ok
        else describe_money_out_result(result.result_code),
        result=status_facts(result) if ok else None,
        answered_at=result.finalised_at,
    )
    if lookup.payout_id is not None:
        return await apply_status_answer(session, lookup, result)
    return "applied"


@handles(CallbackKind.balance_timeout, CallbackKind.status_timeout)
async def apply_timeout(session: AsyncSession, row: CallbackInbox, data: Any, settings: Settings) -> str:
    notice = parse_queue_timeout(data)
    kind = LookupKind.balance if row.kind == CallbackKind.balance_timeout.value else LookupKind.status
    lookup = await _find(session, row, notice.conversation_id, kind)
    if lookup.status is not LookupStatus.pending:
        return "duplicate"
    lookups.record_answer(
        lookup, status=LookupStatus.timeout, result_code=notice.result_code, result_desc=TIMED_OUT
    )
    if kind is LookupKind.balance:
        await apply_balance_answer(
            session,
            lookup,
            ok=False,
            code=None,
            message="M-Pesa did not answer the balance check in time: try again.",
        )
    return "applied"
