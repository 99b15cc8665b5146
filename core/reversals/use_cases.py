"""Reversing a received payment, as every entry point does it: asked for with a reason (the owner, or
a key with payouts:write), confirmed with the code then sent to the owner by email and Telegram (the
second factor: whoever asked must have the owner's inbox or chat), then sent to M-Pesa in a job. The
payment becomes `reversed` only when M-Pesa's result says so (core.reversals.answers)."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.auth.twofactor import masked_email
from core.db import utcnow
from core.errors import LipapushError, NotFound
from core.jobs.registry import enqueue
from core.money import format_kes
from core.notify.models import Notification, NotifyChannel
from core.notify.service import notify
from core.payments.service import payments
from core.reversals import service
from core.reversals.jobs import send_reversal
from core.reversals.models import Reversal, ReversalStatus
from core.reversals.schemas import ReversalOut, ReversalStarted
from core.runtime import runtime
from core.tenants.service import tenants

MAX_PAGE = 100


@use_case(Permission.reversals_request, audit="reversal.requested")
async def start_reversal(actor: Actor, payment_id: uuid.UUID, *, reason: str) -> ReversalStarted:
    """Ask to reverse a received payment. Nothing goes to M-Pesa yet: a 6-digit code goes to the
    owner (email, and Telegram when linked), valid 10 minutes, and `confirm_reversal` with it sends
    the reversal. Asking again replaces an unconfirmed request (its code stops working)."""
    tenant_id = actor.require_tenant()
    text = service.check_reason(reason)
    settings = runtime().settings
    async with unit_of_work(actor) as uow:
        s = uow.session
        payment = await payments.get(s, tenant_id=tenant_id, payment_id=payment_id, mode=actor.mode)
        await service.reversible(s, payment)
        await s.execute(
            update(Reversal)
            .where(Reversal.payment_id == payment.id, Reversal.status == ReversalStatus.unconfirmed)
            .values(status=ReversalStatus.cancelled, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        code = service.new_code()
        row = Reversal(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            payment_id=payment.id,
            channel_id=payment.channel_id,
            mode=payment.mode,
            status=ReversalStatus.unconfirmed,
            amount=payment.paid_amount or payment.amount,
            receipt=payment.receipt or "",
            reason=text,
            requested_by_id=actor.audit_user_id,
            confirm_expires_at=utcnow() + service.CODE_TTL,
            confirm_attempts=0,
        )
        row.confirm_code_hash = service.code_hash(code, row.id, settings)
        s.add(row)
        await s.flush()
        tenant = await tenants.get(s, tenant_id)
        owner = await notify.owner(s, tenant_id=tenant_id)
        body = (
            f"{tenant.name}: the code to reverse {format_kes(row.amount)} ({row.receipt}) is {code}. It "
            f"works for 10 minutes. Reason given: {text}. If you did not ask for this, do not share the "
            "code and change your password."
        )
        sent_to = []
        if owner is not None:
            await notify.queue(
                s,
                Notification(
                    tenant_id=tenant_id,
                    kind="reversal.code",
                    channel=NotifyChannel.email,
                    recipient=owner.email,
                    subject=f"Code to reverse {row.receipt}"[:200],
                    body=body,
                ),
            )
            sent_to.append(f"email {masked_email(owner.email)}")
            if owner.telegram_user_id is not None:
                await notify.queue(
                    s,
                    Notification(
                        tenant_id=tenant_id,
                        kind="reversal.code",
                        channel=NotifyChannel.telegram,
                        recipient=str(owner.telegram_user_id),
                        body=body,
                    ),
                )
                sent_to.append("Telegram")
        await uow.audit(
            "reversal.requested",
            target=str(row.id),
            payment_id=str(payment.id),
            receipt=row.receipt,
            amount=row.amount,
            reason=text,
        )
        return ReversalStarted(reversal=ReversalOut.model_validate(row), code_sent_to=sent_to)


@use_case(
    Permission.reversals_request,
    recorded_by="a reversal.confirmed audit row, or reversal.code_refused for a wrong or expired code",
)
async def confirm_reversal(actor: Actor, reversal_id: uuid.UUID, *, code: str) -> ReversalOut:
    """The second factor: the code sent to the owner. Right, the reversal is sent to M-Pesa (after
    this commits); wrong, the try is counted (5 at most) and kept, though the answer is an error;
    expired, start again."""
    tenant_id = actor.require_tenant()
    settings = runtime().settings
    refused: LipapushError | None = None
    async with unit_of_work(actor) as uow:
        row = await service.get(uow.session, tenant_id=tenant_id, reversal_id=reversal_id)
        try:
            service.check_code(row, code, settings)
        except LipapushError as exc:
            await uow.audit("reversal.code_refused", target=str(row.id), reason=exc.message)
            refused = exc
        else:
            payment = await payments.get(uow.session, tenant_id=tenant_id, payment_id=row.payment_id)
            await service.reversible(uow.session, payment)  # another reversal may have won meanwhile
            row.status = ReversalStatus.pending
            row.confirmed_at = utcnow()
            row.confirm_code_hash = None
            await uow.audit("reversal.confirmed", target=str(row.id), receipt=row.receipt, amount=row.amount)
            await enqueue(uow.session, send_reversal, reversal_id=str(row.id))
        out = ReversalOut.model_validate(row)
    if refused is not None:
        raise refused
    return out


@use_case(Permission.payouts_read, query=True)
async def list_reversals(
    actor: Actor, *, limit: int = 50, payment_id: uuid.UUID | None = None
) -> list[ReversalOut]:
    """The business's reversals (of one payment, given `payment_id`), newest first; an API key sees
    its own mode's."""
    limit = max(1, min(limit, MAX_PAGE))
    async with unit_of_work(actor, readonly=True) as uow:
        stmt = select(Reversal).where(Reversal.tenant_id == actor.require_tenant())
        if payment_id is not None:
            stmt = stmt.where(Reversal.payment_id == payment_id)
        if actor.mode is not None:
            stmt = stmt.where(Reversal.mode == actor.mode)
        rows = await uow.session.scalars(stmt.order_by(Reversal.created_at.desc()).limit(limit))
        return [ReversalOut.model_validate(r) for r in rows]


@use_case(Permission.payouts_read, query=True)
async def get_reversal(actor: Actor, reversal_id: uuid.UUID) -> ReversalOut:
    async with unit_of_work(actor, readonly=True) as uow:
        row = await service.get(uow.session, tenant_id=actor.require_tenant(), reversal_id=reversal_id)
        if actor.mode is not None and row.mode is not actor.mode:
            raise NotFound("No such reversal.")
        return ReversalOut.model_validate(row)
