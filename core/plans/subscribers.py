"""A plan paid by M-Pesa: the top-up lands in the wallet (core.billing.subscribers credits it first,
core/subscribers.py orders them), then the plan is paid from it, in the same transaction."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import LipapushError
from core.events import subscribe
from core.money import format_kes
from core.notify.service import notify
from core.payments.events import PaymentFinalised
from core.payments.models import PaymentSource
from core.plans import billing
from core.plans.service import plans
from core.runtime import runtime

log = logging.getLogger(__name__)


@subscribe(PaymentFinalised)
async def pay_plan_from_topup(session: AsyncSession, event: PaymentFinalised) -> None:
    p, tenant = event.payment, event.tenant
    if p.source is not PaymentSource.topup or tenant.plan_payment_id != p.id:
        return
    tenant.plan_payment_id = None
    if not event.succeeded:
        return
    state = await plans.state(session, tenant)
    try:
        async with session.begin_nested():
            owing = await billing.pay_from_wallet(
                session, tenant=tenant, plan=state.chosen, settings=runtime().settings
            )
    except LipapushError as exc:  # the plan changed meanwhile, or is free now: the money stays
        log.warning("plan payment %s for tenant %s not applied: %s", p.id, tenant.id, exc.message)
        await notify.to_owner(
            session,
            tenant=tenant,
            kind="plan_payment",
            body=f"{format_kes(p.amount)} reached your lipapush wallet, but your plan could not be paid from "
            f"it: {exc.message} The money stays in the wallet.",
        )
        return
    await notify.to_owner(
        session,
        tenant=tenant,
        kind="plan_payment",
        body=f"Your {state.chosen.name} plan is paid until {billing.last_day(owing)}. Thank you!",
    )
