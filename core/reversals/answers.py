"""M-Pesa's answer to a reversal: its Result (success, already reversed, or refused) or a QueueTimeOut,
matched to the reversal by ConversationID and applied once (core.reversals.service.apply_result)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.daraja.result_codes import describe_money_out_result
from core.daraja.results import parse_queue_timeout, parse_reversal_result
from core.mpesa_inbox.kinds import CallbackKind
from core.mpesa_inbox.registry import NotYetMatched, handles
from core.payments.models import CallbackInbox
from core.reversals import service
from core.reversals.models import Reversal

QUEUE_TIMEOUT = (
    "M-Pesa's queue gave up on the reversal before M-Pesa answered. Check the M-Pesa statement for the "
    "receipt: if the money is still there, ask for the reversal again."
)


@handles(CallbackKind.reversal_result, CallbackKind.reversal_timeout)
async def apply_reversal_answer(
    session: AsyncSession, row: CallbackInbox, data: Any, settings: Settings
) -> str:
    reversal = (
        await session.scalar(
            select(Reversal).where(Reversal.conversation_id == row.reference).with_for_update()
        )
        if row.reference
        else None
    )
    if reversal is None:
        raise NotYetMatched(f"no reversal has ConversationID {row.reference}")
    if reversal.channel_id != row.channel_id:
        return "rejected: another channel's reversal"
    if CallbackKind(row.kind).is_timeout:
        parse_queue_timeout(data)
        return await service.apply_result(
            session, reversal=reversal, succeeded=False, result_code=None, result_desc=QUEUE_TIMEOUT,
            timed_out=True,
        )  # fmt: skip
    result = parse_reversal_result(data)
    code = result.result_code
    if code == "0":
        return await service.apply_result(
            session, reversal=reversal, succeeded=True, result_code=code, result_desc=result.result_desc,
            reversal_receipt=result.transaction_id,
        )  # fmt: skip
    if code == service.ALREADY_REVERSED:  # the money went back already (an earlier request, the portal)
        return await service.apply_result(
            session, reversal=reversal, succeeded=True, result_code=code,
            result_desc="M-Pesa says this payment was already reversed.",
        )  # fmt: skip
    return await service.apply_result(
        session, reversal=reversal, succeeded=False, result_code=code,
        result_desc=describe_money_out_result(code),
    )  # fmt: skip
