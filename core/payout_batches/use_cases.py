"""Bulk payouts, from every entry point: upload a file (a checked preview, nothing paid), approve it
(the confirmation: its rows are queued and go out WINDOW at a time), pause, resume, cancel, follow,
and download the result. Who may: whoever may pay out (the owner, a key with payouts:write, staff the
owner allowed); reading: payouts:read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import select

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.db import utcnow
from core.errors import Conflict, InvalidInput, TenantNotActive
from core.exports.use_cases import BuiltExport
from core.exports.xlsx import Column, build_xlsx
from core.money import format_kes
from core.payout_batches import service
from core.payout_batches.parse import check_file
from core.payout_batches.schemas import BatchOut
from core.payouts import channels as payout_channels
from core.payouts.limits import limits_of, lock_business, sent_today
from core.payouts.models import BatchStatus, Payout, PayoutBatch, PayoutCommand, PayoutSource
from core.payouts.use_cases import SOURCE_BY_VIA, with_payout_grant
from core.runtime import runtime
from core.tenants.models import TenantStatus

# The request body limit (MAX_BODY_BYTES_DEFAULT, 1 MB) holds 5 000 rows of Excel several times over.
MAX_FILE_BYTES = 1024 * 1024
MAX_LIST = 100
RESULT_COLUMNS = [
    Column("Row", "int", 6),
    Column("Phone", "text", 14),
    Column("Amount (KES)", "int", 12),
    Column("Name", "text", 24),
    Column("Reference", "text", 24),
    Column("Status", "text", 10),
    Column("M-Pesa receipt", "text", 14),
    Column("Paid to (M-Pesa name)", "text", 28),
    Column("Result", "text", 48),
    Column("Completed (EAT)", "datetime", 20),
]


async def upload_batch(
    actor: Actor,
    *,
    filename: str,
    data: bytes,
    command: PayoutCommand = PayoutCommand.business,
    channel_id: uuid.UUID | None = None,
) -> BatchOut:
    """Check a file and keep it as a draft batch: its preview (payable rows, refused rows with their
    reasons, duplicates flagged). Nothing is paid until it is approved."""
    return await _upload(
        await with_payout_grant(actor), filename=filename, data=data, command=command, channel_id=channel_id
    )


@use_case(Permission.payouts_request, audit="payout_batch.uploaded")
async def _upload(
    actor: Actor, *, filename: str, data: bytes, command: PayoutCommand, channel_id: uuid.UUID | None
) -> BatchOut:
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput("file", f"The file is over {MAX_FILE_BYTES // (1024 * 1024)} MB: split the list.")
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor) as uow:
        s = uow.session
        channel = await payout_channels.choose(s, tenant_id=tenant_id, channel_id=channel_id, mode=actor.mode)
        payout_channels.ensure_can_pay_out(channel)
        tenant = await lock_business(s, tenant_id)
        checked = check_file(filename, data, max_amount=limits_of(tenant, runtime().settings).per_payout_kes)
        problems = checked.problems + await service.recent_duplicates(
            s, tenant_id=tenant_id, mode=channel.mode, checked=checked
        )
        batch = service.draft(
            tenant_id=tenant_id,
            channel=channel,
            command=command,
            filename=filename or "payouts",
            checked=checked,
            problems=problems,
            created_by=actor.audit_user_id,
        )
        s.add(batch)
        await s.flush()
        await uow.audit(
            "payout_batch.uploaded",
            target=str(batch.id),
            filename=batch.filename,
            rows=checked.total_rows,
            payable=batch.rows_valid,
            refused=sum(1 for p in problems if not p.duplicate),
            amount=batch.amount_total,
        )
        return await service.view(s, batch)


async def approve_batch(actor: Actor, batch_id: uuid.UUID, *, include_duplicates: bool = False) -> BatchOut:
    """Pay a draft: its payable rows (flagged duplicates only if `include_duplicates`) become queued
    payouts and the first go to M-Pesa. Refused when today's payouts plus the batch would pass the
    business's daily limit, or a row its per-payout limit (limits may have changed since the upload)."""
    return await _approve(await with_payout_grant(actor), batch_id, include_duplicates=include_duplicates)


@use_case(Permission.payouts_request, audit="payout_batch.approved")
async def _approve(actor: Actor, batch_id: uuid.UUID, *, include_duplicates: bool) -> BatchOut:
    tenant_id = actor.require_tenant()
    settings = runtime().settings
    async with unit_of_work(actor) as uow:
        s = uow.session
        tenant = await lock_business(s, tenant_id)
        batch = await service.lock(s, tenant_id=tenant_id, batch_id=batch_id)
        service.ensure(batch, BatchStatus.draft, doing="approved")
        _mode_of(actor, batch)
        if tenant.status is TenantStatus.suspended:
            raise TenantNotActive("This business is suspended: it cannot pay out. Contact lipapush support.")
        channel = await payout_channels.choose(
            s, tenant_id=tenant_id, channel_id=batch.channel_id, mode=actor.mode
        )
        payout_channels.ensure_can_pay_out(channel)
        rows = service.chosen_rows(batch, include_duplicates=include_duplicates)
        if not rows:
            raise Conflict("This batch has no row to pay: fix the file and upload it again.")
        limits = limits_of(tenant, settings)
        over = [r["row"] for r in rows if r["amount"] > limits.per_payout_kes]
        if over:
            raise Conflict(
                f"Rows {', '.join(map(str, over[:10]))} are over the per-payout limit of "
                f"{format_kes(limits.per_payout_kes)}: upload the file again or raise the limit."
            )
        total = sum(r["amount"] for r in rows)
        today = await sent_today(s, tenant_id=tenant_id, mode=batch.mode, now=utcnow())
        if today + total > limits.daily_kes:
            raise Conflict(
                f"This batch of {format_kes(total)} would take today's payouts to "
                f"{format_kes(today + total)}, over the daily limit of {format_kes(limits.daily_kes)} "
                f"({format_kes(today)} already sent or on its way today, Nairobi time). Split the file over "
                "days, or ask lipapush to raise the limit."
            )
        source = SOURCE_BY_VIA.get(actor.via, PayoutSource.api)
        s.add_all(service.queue_rows(batch, rows, source=source, approved_by=actor.audit_user_id))
        batch.include_duplicates = include_duplicates
        batch.status = BatchStatus.running
        batch.approved_by_id = actor.audit_user_id
        batch.approved_at = utcnow()
        await s.flush()
        await service.advance(s, batch)
        await uow.audit(
            "payout_batch.approved", target=str(batch.id), rows=len(rows), amount=total,
            include_duplicates=include_duplicates,
        )  # fmt: skip
        return await service.view(s, batch)


async def pause_batch(actor: Actor, batch_id: uuid.UUID) -> BatchOut:
    """Stop sending the queued rows; rows already with M-Pesa finish."""
    return await _pause(await with_payout_grant(actor), batch_id)


@use_case(Permission.payouts_request, audit="payout_batch.paused")
async def _pause(actor: Actor, batch_id: uuid.UUID) -> BatchOut:
    async with unit_of_work(actor) as uow:
        batch = await service.lock(uow.session, tenant_id=actor.require_tenant(), batch_id=batch_id)
        _mode_of(actor, batch)
        service.ensure(batch, BatchStatus.running, doing="paused")
        service.pause(batch, "Paused by a person.")
        await uow.audit("payout_batch.paused", target=str(batch.id))
        return await service.view(uow.session, batch)


async def resume_batch(actor: Actor, batch_id: uuid.UUID) -> BatchOut:
    """Send the rest: queued rows, and rows M-Pesa refused for insufficient funds (under new ids)."""
    return await _resume(await with_payout_grant(actor), batch_id)


@use_case(Permission.payouts_request, audit="payout_batch.resumed")
async def _resume(actor: Actor, batch_id: uuid.UUID) -> BatchOut:
    async with unit_of_work(actor) as uow:
        s = uow.session
        await lock_business(s, actor.require_tenant())
        batch = await service.lock(s, tenant_id=actor.require_tenant(), batch_id=batch_id)
        _mode_of(actor, batch)
        service.ensure(batch, BatchStatus.paused, doing="resumed")
        again = await service.requeue_short_of_funds(s, batch)
        batch.status = BatchStatus.running
        batch.pause_reason = None
        await s.flush()
        await service.advance(s, batch)
        await uow.audit("payout_batch.resumed", target=str(batch.id), rows_sent_again=again)
        return await service.view(s, batch)


async def cancel_batch(actor: Actor, batch_id: uuid.UUID) -> BatchOut:
    """Throw a draft away, or stop a paused batch for good: its queued rows are never sent."""
    return await _cancel(await with_payout_grant(actor), batch_id)


@use_case(Permission.payouts_request, audit="payout_batch.cancelled")
async def _cancel(actor: Actor, batch_id: uuid.UUID) -> BatchOut:
    async with unit_of_work(actor) as uow:
        s = uow.session
        batch = await service.lock(s, tenant_id=actor.require_tenant(), batch_id=batch_id)
        _mode_of(actor, batch)
        service.ensure(batch, BatchStatus.draft, BatchStatus.paused, doing="cancelled (pause it first)")
        dropped = await service.cancel_queued(s, batch)
        batch.status = BatchStatus.cancelled
        batch.finished_at = utcnow()
        await uow.audit("payout_batch.cancelled", target=str(batch.id), rows_not_sent=dropped)
        return await service.view(s, batch)


@use_case(Permission.payouts_read, query=True)
async def get_batch(actor: Actor, batch_id: uuid.UUID) -> BatchOut:
    async with unit_of_work(actor, readonly=True) as uow:
        batch = await uow.session.scalar(
            select(PayoutBatch).where(
                PayoutBatch.id == batch_id, PayoutBatch.tenant_id == actor.require_tenant()
            )
        )
        if batch is None or (actor.mode is not None and batch.mode is not actor.mode):
            raise service.NotFound("No such batch. List the business's batches with GET /api/payout-batches.")
        return await service.view(uow.session, batch)


@use_case(Permission.payouts_read, query=True)
async def list_batches(actor: Actor, *, limit: int = 20) -> list[BatchOut]:
    async with unit_of_work(actor, readonly=True) as uow:
        stmt = select(PayoutBatch).where(PayoutBatch.tenant_id == actor.require_tenant())
        if actor.mode is not None:
            stmt = stmt.where(PayoutBatch.mode == actor.mode)
        rows = await uow.session.scalars(
            stmt.order_by(PayoutBatch.created_at.desc()).limit(max(1, min(limit, MAX_LIST)))
        )
        return [await service.view(uow.session, b) for b in rows]


@use_case(Permission.payouts_read, audit="export.payout_batch")
async def batch_result(actor: Actor, batch_id: uuid.UUID) -> BuiltExport:
    """The batch as .xlsx: every row of the file in order, paid or not and why, with receipts."""
    batch = await get_batch(actor, batch_id)
    async with unit_of_work(actor, readonly=True) as uow:
        payouts = {
            p.row_number: p
            for p in await uow.session.scalars(select(Payout).where(Payout.batch_id == batch.id))
        }

    async def rows() -> AsyncIterator[Sequence[Sequence[object]]]:
        refused: dict[int, dict[str, Any]] = {int(p["row"]): p for p in batch.problems}
        numbers = sorted({n for n in payouts if n is not None} | set(refused))
        out: list[Sequence[object]] = []
        for n in numbers:
            p = payouts.get(n)
            if p is not None:
                out.append(
                    (n, p.phone, p.amount, p.name, p.reference, p.status.value, p.receipt, p.recipient_name,
                     p.result_desc, p.completed_at)
                )  # fmt: skip
            else:
                why = refused[n]
                state = "left out" if why.get("duplicate") else "refused"
                out.append((n, None, None, None, None, state, None, None, why["reason"], None))
        yield out

    path, count = await build_xlsx(
        sheet_title="Batch", columns=RESULT_COLUMNS, batches=rows(), directory=runtime().settings.EXPORT_DIR
    )
    async with unit_of_work(actor) as uow:
        await uow.audit("export.payout_batch", target=str(batch.id), rows=count)
    return BuiltExport(path, count, f"payouts-{batch.filename.rsplit('.', 1)[0]}"[:60])


def _mode_of(actor: Actor, batch: PayoutBatch) -> None:
    """An API key acts on batches of its own mode only; another mode's is as good as absent (404)."""
    if actor.mode is not None and batch.mode is not actor.mode:
        raise service.NotFound("No such batch. List the business's batches with GET /api/payout-batches.")


@use_case(
    Permission.payouts_read, recorded_by="nothing: it only remembers which chat message shows the batch"
)
async def show_progress_in(actor: Actor, batch_id: uuid.UUID, *, chat_id: int, message_id: int) -> None:
    """The bot's message that shows this batch: edited as the batch moves on (core.payout_batches.jobs)."""
    async with unit_of_work(actor) as uow:
        batch = await service.lock(uow.session, tenant_id=actor.require_tenant(), batch_id=batch_id)
        batch.status_chat_id, batch.status_message_id = chat_id, message_id
