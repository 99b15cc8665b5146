"""Bulk payouts, the rules that need a session: a draft from a checked file, approval into queued
payouts, the pace they go at, pausing, resuming and what the batch looks like.

Pace: at most WINDOW rows of a batch are with M-Pesa at once; each result lets the next row go. So a
batch that runs out of money stops after a handful of "insufficient balance" results rather than
hundreds: the first such result pauses it (core.payout_batches.subscribers) and the queued rows wait.

Every row is one payout row (UNIQUE(batch_id, row_number)), so a row is paid at most once however often
the batch is resumed. A row M-Pesa refused for insufficient funds is definitive (no money moved), so a
resume sends it again under a new OriginatorConversationID; a row whose outcome is unknown (timeout) is
never sent again."""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.errors import Conflict, NotFound
from core.jobs.registry import enqueue
from core.payout_batches.parse import BatchRow, CheckedFile, RowProblem
from core.payout_batches.schemas import BatchOut, BatchProgress
from core.payouts.models import BatchStatus, Payout, PayoutBatch, PayoutCommand, PayoutSource, PayoutStatus
from core.payouts.send import send_payout
from core.payouts.service import originator_id
from core.tenants.models import Mode, MpesaChannel

WINDOW = 10
RECENT = timedelta(hours=24)
INSUFFICIENT_FUNDS = "1"  # B2C ResultCode: the Utility account cannot cover the payout
SHORT_OF_FUNDS = (
    "M-Pesa says the B2C account cannot cover row {row}: top the account up, then resume the batch. "
    "The rows not paid yet are waiting, and nothing is paid twice."
)
# The reconciler's first look at a row the send job has not sent by then (core.payouts.reconcile).
SEND_GRACE = timedelta(minutes=2)


async def recent_duplicates(
    session: AsyncSession, *, tenant_id: uuid.UUID, mode: Mode, checked: CheckedFile
) -> list[RowProblem]:
    """Rows that repeat a payout of the last 24 hours (same phone and amount, not failed)."""
    phones = {r.phone for r in checked.rows}
    if not phones:
        return []
    since = utcnow() - RECENT
    found = await session.execute(
        select(Payout.phone, Payout.amount, func.max(Payout.created_at))
        .where(
            Payout.tenant_id == tenant_id,
            Payout.mode == mode,
            Payout.phone.in_(phones),
            Payout.created_at >= since,
            Payout.status.in_([PayoutStatus.queued, PayoutStatus.pending, PayoutStatus.success]),
        )
        .group_by(Payout.phone, Payout.amount)
    )
    recent = {(phone, amount) for phone, amount, _ in found}
    already = checked.duplicate_rows
    return [
        RowProblem(
            r.row,
            "row",
            f"KES {r.amount:,} went to this number in the last 24 hours: left out unless you include "
            "duplicates.",
            duplicate=True,
        )
        for r in checked.rows
        if (r.phone, r.amount) in recent and r.row not in already
    ]


def draft(
    *,
    tenant_id: uuid.UUID,
    channel: MpesaChannel,
    command: PayoutCommand,
    filename: str,
    checked: CheckedFile,
    problems: list[RowProblem],
    created_by: uuid.UUID | None,
) -> PayoutBatch:
    return PayoutBatch(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        channel_id=channel.id,
        mode=channel.mode,
        command=command,
        status=BatchStatus.draft,
        filename=filename[:200],
        problems=[p.as_dict() for p in sorted(problems, key=lambda p: p.row)],
        rows=[_row_json(r) for r in checked.rows],
        include_duplicates=False,
        rows_total=checked.total_rows,
        rows_valid=len(checked.rows),
        amount_total=sum(r.amount for r in checked.rows),
        created_by_id=created_by,
    )


def _row_json(r: BatchRow) -> dict[str, Any]:
    return {"row": r.row, "phone": r.phone, "amount": r.amount, "name": r.name, "reference": r.reference}


def chosen_rows(batch: PayoutBatch, *, include_duplicates: bool) -> list[dict[str, Any]]:
    """The rows approval pays: every payable row, less the flagged duplicates unless included."""
    flagged = {p["row"] for p in batch.problems if p.get("duplicate")}
    return [r for r in batch.rows if include_duplicates or r["row"] not in flagged]


def queue_rows(
    batch: PayoutBatch, rows: list[dict[str, Any]], *, source: PayoutSource, approved_by: uuid.UUID | None
) -> list[Payout]:
    now = utcnow()
    out = []
    for r in rows:
        pid = uuid.uuid4()
        out.append(
            Payout(
                id=pid,
                tenant_id=batch.tenant_id,
                channel_id=batch.channel_id,
                batch_id=batch.id,
                row_number=r["row"],
                mode=batch.mode,
                source=source,
                command=batch.command,
                status=PayoutStatus.queued,
                phone=r["phone"],
                amount=r["amount"],
                name=r.get("name"),
                reference=r.get("reference"),
                initiated_by_id=approved_by,
                originator_conversation_id=originator_id(pid),
                send_attempts=0,
                status_checks=0,
                created_at=now,
            )
        )
    return out


async def lock(session: AsyncSession, *, tenant_id: uuid.UUID, batch_id: uuid.UUID) -> PayoutBatch:
    batch = await session.scalar(
        select(PayoutBatch)
        .where(PayoutBatch.id == batch_id, PayoutBatch.tenant_id == tenant_id)
        .with_for_update()
    )
    if batch is None:
        raise NotFound("No such batch. List the business's batches with GET /api/payout-batches.")
    return batch


async def advance(session: AsyncSession, batch: PayoutBatch) -> int:
    """Let queued rows go while fewer than WINDOW are with M-Pesa (the batch row locked by the caller);
    a batch with nothing queued or pending is done. Returns how many rows went."""
    if batch.status is not BatchStatus.running:
        return 0
    counts = await _counts(session, batch.id)
    free = WINDOW - counts.get(PayoutStatus.pending, 0)
    going = []
    if free > 0 and counts.get(PayoutStatus.queued, 0):
        going = list(
            await session.scalars(
                select(Payout)
                .where(Payout.batch_id == batch.id, Payout.status == PayoutStatus.queued)
                .order_by(Payout.row_number)
                .limit(free)
                .with_for_update()
            )
        )
    now = utcnow()
    for p in going:
        p.status = PayoutStatus.pending
        p.next_check_at = now + SEND_GRACE
        await enqueue(session, send_payout, payout_id=str(p.id))
    if not going and not counts.get(PayoutStatus.queued, 0) and not counts.get(PayoutStatus.pending, 0):
        short = await session.scalar(
            select(Payout.row_number)
            .where(
                Payout.batch_id == batch.id,
                Payout.status == PayoutStatus.failed,
                Payout.result_code == INSUFFICIENT_FUNDS,
            )
            .order_by(Payout.row_number)
            .limit(1)
        )
        if short is not None:  # the money ran out on the last rows: they wait for a resume
            pause(batch, SHORT_OF_FUNDS.format(row=short))
        else:
            batch.status = BatchStatus.done
            batch.finished_at = now
    return len(going)


def pause(batch: PayoutBatch, reason: str) -> bool:
    if batch.status is not BatchStatus.running:
        return False
    batch.status = BatchStatus.paused
    batch.pause_reason = reason[:500]
    return True


async def requeue_short_of_funds(session: AsyncSession, batch: PayoutBatch) -> int:
    """Rows M-Pesa refused for insufficient funds go back in the queue, each under a new
    OriginatorConversationID (the refusal is final: nothing was paid under the old one)."""
    rows = list(
        await session.scalars(
            select(Payout)
            .where(
                Payout.batch_id == batch.id,
                Payout.status == PayoutStatus.failed,
                Payout.result_code == INSUFFICIENT_FUNDS,
            )
            .with_for_update()
        )
    )
    for p in rows:
        p.status = PayoutStatus.queued
        # A fresh id, never one used before: Daraja refuses a repeated id as a duplicate.
        p.originator_conversation_id = f"lp_{p.id.hex[:20]}_{secrets.token_hex(4)}"
        for column in ("conversation_id", "sent_at", "next_check_at", "result_code", "result_desc"):
            setattr(p, column, None)
        p.completed_at = None
        p.send_attempts = 0
        p.status_checks = 0
    return len(rows)


async def cancel_queued(session: AsyncSession, batch: PayoutBatch) -> int:
    """The rows that never went: failed, saying so (they were never sent, so nothing can have moved)."""
    result = await session.execute(
        update(Payout)
        .where(Payout.batch_id == batch.id, Payout.status == PayoutStatus.queued)
        .values(
            status=PayoutStatus.failed,
            result_desc="Not sent: the batch was cancelled.",
            completed_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def _counts(session: AsyncSession, batch_id: uuid.UUID) -> Counter[PayoutStatus]:
    rows = await session.execute(
        select(Payout.status, func.count()).where(Payout.batch_id == batch_id).group_by(Payout.status)
    )
    return Counter({PayoutStatus(s): int(n) for s, n in rows})


async def progress(session: AsyncSession, batch: PayoutBatch) -> BatchProgress:
    rows = await session.execute(
        select(Payout.status, func.count(), func.coalesce(func.sum(Payout.amount), 0))
        .where(Payout.batch_id == batch.id)
        .group_by(Payout.status)
    )
    n: Counter[PayoutStatus] = Counter()
    kes: Counter[PayoutStatus] = Counter()
    for status, count, amount in rows:
        n[PayoutStatus(status)] = int(count)
        kes[PayoutStatus(status)] = int(amount)
    return BatchProgress(
        queued=n[PayoutStatus.queued],
        pending=n[PayoutStatus.pending],
        paid=n[PayoutStatus.success],
        failed=n[PayoutStatus.failed],
        timeout=n[PayoutStatus.timeout],
        paid_kes=kes[PayoutStatus.success],
        left_kes=kes[PayoutStatus.queued] + kes[PayoutStatus.pending],
    )


async def view(session: AsyncSession, batch: PayoutBatch) -> BatchOut:
    approved = batch.status is not BatchStatus.draft and batch.approved_at is not None
    paying = chosen_rows(batch, include_duplicates=batch.include_duplicates)
    return BatchOut(
        id=batch.id,
        status=batch.status,
        mode=batch.mode,
        command=batch.command,
        channel_id=batch.channel_id,
        filename=batch.filename,
        rows_total=batch.rows_total,
        rows_valid=batch.rows_valid,
        amount_total=batch.amount_total,
        duplicates=sum(1 for p in batch.problems if p.get("duplicate")),
        rows_to_pay=len(paying),
        amount_to_pay=sum(r["amount"] for r in paying),
        problems=list(batch.problems),
        include_duplicates=batch.include_duplicates,
        pause_reason=batch.pause_reason,
        progress=await progress(session, batch) if approved else None,
        created_at=batch.created_at,
        approved_at=batch.approved_at,
        finished_at=batch.finished_at,
    )


def ensure(batch: PayoutBatch, *allowed: BatchStatus, doing: str) -> None:
    if batch.status not in allowed:
        raise Conflict(f"This batch is {batch.status.value}: it cannot be {doing}.")
