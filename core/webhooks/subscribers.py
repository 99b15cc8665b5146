"""A payment's final state, a flag on it, a voucher it bought and a payout's end become events to the
merchant's own system, in the transaction of the change (the outbox: core.webhooks.service.emit)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.events import subscribe
from core.hotspot.models import Voucher
from core.hotspot.schemas import VoucherOut
from core.payments.events import PaymentFinalised, PaymentFlagged
from core.payments.models import CUSTOMER_SOURCES, Payment, PaymentSource
from core.payouts.events import PayoutFinalised
from core.payouts.schemas import payout_data
from core.reversals.events import PaymentReversed, ReversalFailed
from core.reversals.models import Reversal
from core.reversals.schemas import ReversalOut
from core.webhooks.events import (
    PAYMENT_FLAGGED,
    REVERSAL_FAILED,
    REVERSAL_SUCCEEDED,
    VOUCHER_ISSUED,
    payment_data,
    payment_event_type,
    payout_event_type,
)
from core.webhooks.service import webhooks


async def emit_payment(session: AsyncSession, payment: Payment, event_type: str) -> None:
    await webhooks.emit(
        session,
        tenant_id=payment.tenant_id,
        mode=payment.mode,
        event_type=event_type,
        object_id=str(payment.id),
        data=payment_data(payment),
        created_at=payment.updated_at or utcnow(),
        app_id=payment.app_id,
        channel_id=payment.channel_id,
        callback_url=payment.callback_url,
    )


@subscribe(PaymentFinalised)
async def announce_payment(session: AsyncSession, event: PaymentFinalised) -> None:
    payment = event.payment
    if payment.source not in CUSTOMER_SOURCES:
        return  # onboarding and wallet top-up pushes are the platform's business, not the app's
    await emit_payment(session, payment, payment_event_type(event.status))
    if payment.flag:
        await emit_payment(session, payment, PAYMENT_FLAGGED)
    if event.succeeded and payment.source in (PaymentSource.portal, PaymentSource.ussd):
        # core.hotspot.subscribers ran first (core/subscribers.py keeps this module last).
        voucher = await session.scalar(select(Voucher).where(Voucher.payment_id == payment.id))
        if voucher is not None:
            data = VoucherOut.model_validate(voucher).model_dump(mode="json")
            data["payment_id"] = str(payment.id)
            data["mode"] = payment.mode.value
            await webhooks.emit(
                session,
                tenant_id=payment.tenant_id,
                mode=payment.mode,
                event_type=VOUCHER_ISSUED,
                object_id=str(voucher.id),
                data=data,
                created_at=voucher.issued_at,
                app_id=payment.app_id,
                channel_id=payment.channel_id,
            )


@subscribe(PaymentFlagged)
async def announce_flag(session: AsyncSession, event: PaymentFlagged) -> None:
    if event.payment.source in CUSTOMER_SOURCES:
        await emit_payment(session, event.payment, PAYMENT_FLAGGED)


@subscribe(PayoutFinalised)
async def announce_payout(session: AsyncSession, event: PayoutFinalised) -> None:
    """To the endpoints of the app whose key asked for the payout; a payout no app asked for (the bot,
    USSD, the panel, the CLI, a batch) to every endpoint of its mode: a B2C channel is no app's
    channel, so the push rule (the apps on the object's channel) would reach nobody."""
    payout = event.payout
    await webhooks.emit(
        session,
        tenant_id=payout.tenant_id,
        mode=payout.mode,
        event_type=payout_event_type(event.status),
        object_id=str(payout.id),
        data=payout_data(payout),
        created_at=payout.completed_at or utcnow(),
        app_id=payout.app_id,
    )


@subscribe(PaymentReversed)
async def announce_reversal(session: AsyncSession, event: PaymentReversed) -> None:
    await _emit_reversal(session, event.reversal, REVERSAL_SUCCEEDED)


@subscribe(ReversalFailed)
async def announce_failed_reversal(session: AsyncSession, event: ReversalFailed) -> None:
    await _emit_reversal(session, event.reversal, REVERSAL_FAILED)


async def _emit_reversal(session: AsyncSession, reversal: Reversal, event_type: str) -> None:
    """To every endpoint of the reversal's mode that names the event: a reversal is the owner's act,
    not an app's."""
    await webhooks.emit(
        session,
        tenant_id=reversal.tenant_id,
        mode=reversal.mode,
        event_type=event_type,
        object_id=str(reversal.id),
        data=ReversalOut.model_validate(reversal).model_dump(mode="json"),
        created_at=reversal.finished_at or utcnow(),
        app_id=None,
    )
