"""A batch moves on after each of its payouts ends: the next rows go, or it pauses at the first
"insufficient balance", or it is done. In a job after the payout's result commits, so the result's
transaction never waits on the batch."""

from __future__ import annotations

import uuid

from core.db import Scope, narrow_scope
from core.jobs.registry import job
from core.notify.models import Notification, NotifyChannel
from core.notify.service import notify
from core.payout_batches import service
from core.payout_batches.texts import progress_buttons, progress_text
from core.payouts.models import BatchStatus, Payout, PayoutBatch, PayoutStatus
from core.runtime import unit_of_work
from core.tenants.models import Tenant


@job("payout_batches.advance", max_retries=8, min_backoff_ms=500, max_backoff_ms=30_000)
async def advance_batch(batch_id: str, payout_id: str | None = None) -> None:
    async with unit_of_work(scope=Scope.platform("move a payout batch on")) as session:
        batch = await session.get(PayoutBatch, uuid.UUID(batch_id), with_for_update=True)
        if batch is None:
            return
        await narrow_scope(session, batch.tenant_id)
        before = batch.status
        payout = await session.get(Payout, uuid.UUID(payout_id)) if payout_id else None
        if (
            payout is not None
            and payout.status is PayoutStatus.failed
            and payout.result_code == service.INSUFFICIENT_FUNDS
        ):
            service.pause(batch, service.SHORT_OF_FUNDS.format(row=payout.row_number))
        await service.advance(session, batch)
        if batch.status is before and batch.status_message_id is None:
            return
        tenant = await session.get(Tenant, batch.tenant_id)
        assert tenant is not None
        view = await service.view(session, batch)
        if batch.status_chat_id is not None and batch.status_message_id is not None:
            await notify.queue(
                session,
                Notification(
                    tenant_id=batch.tenant_id,
                    kind="payout_batch.progress",
                    channel=NotifyChannel.telegram,
                    recipient=str(batch.status_chat_id),
                    edit_message_id=batch.status_message_id,
                    body=progress_text(view),
                    buttons=progress_buttons(view),
                ),
            )
        if batch.status is not before and batch.status in (BatchStatus.paused, BatchStatus.done):
            await notify.to_owner(
                session, tenant=tenant, kind=f"payout_batch.{batch.status.value}", body=progress_text(view)
            )
