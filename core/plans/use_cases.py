"""API plans, as every entry point uses them: what applies now and this month's count (owner and
manager), the plans on offer, choosing one and paying it from the wallet (owner). The admin's
catalogue (create, change, assign) is in core/plans/use_cases_admin.py."""

from __future__ import annotations

import math

from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.audit.service import record
from core.errors import Conflict, LipapushError, NotFound
from core.payments.models import Payment
from core.payments.push import request_wallet_topup
from core.payments.schemas import PaymentOut
from core.plans import billing
from core.plans.schemas import PlanOut, PlanPaid, PlanStatusOut
from core.plans.service import plans
from core.runtime import runtime
from core.tenants.models import Tenant, TenantKind
from core.tenants.service import tenants

NOT_FOR_HOTSPOTS = (
    "API plans limit the live M-Pesa payment requests of a business. A WiFi hotspot provider is never "
    "limited by one: its WiFi subscription covers its sales (WiFi in the panel, /wifi in the bot)."
)


async def _business(session: AsyncSession, actor: Actor) -> Tenant:
    """The actor's business, refused for a hotspot provider: plans are counted for businesses only
    (core.payments.push), so offering one to a provider would sell it nothing."""
    tenant = await tenants.get(session, actor.require_tenant())
    if tenant.kind != TenantKind.business:
        raise Conflict(NOT_FOR_HOTSPOTS)
    return tenant


async def status_of(session: AsyncSession, tenant: Tenant) -> PlanStatusOut:
    state = await plans.state(session, tenant)
    try:
        owing = billing.due(state.chosen, tenant)
    except LipapushError:  # paid a month ahead: nothing to pay now
        owing = None
    return PlanStatusOut(
        chosen=PlanOut.model_validate(state.chosen),
        effective=PlanOut.model_validate(state.effective),
        unpaid=state.unpaid,
        paid_until=state.paid_until,
        month=state.month,
        live_pushes=state.live_pushes,
        remaining=state.remaining,
        resets_at=state.resets_at,
        next_payment_cents=owing.amount_cents if owing is not None else None,
        next_mpesa_amount=mpesa_amount(owing.amount_cents) if owing is not None else None,
    )


def mpesa_amount(cents: int) -> int:
    """M-Pesa moves whole shillings: a fee in cents is prompted for rounded up (the rest stays in the
    wallet)."""
    return math.ceil(cents / 100)


@use_case(Permission.plan_read, query=True)
async def plan_status(actor: Actor) -> PlanStatusOut:
    """The business's plan, the one that applies now and this month's live pushes against its quota."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await status_of(uow.session, await _business(uow.session, actor))


@use_case(Permission.plan_read, query=True)
async def plans_on_offer(actor: Actor) -> list[PlanOut]:
    """The plans an owner may choose, cheapest first (hidden ones are the admin's to assign)."""
    async with unit_of_work(actor, readonly=True) as uow:
        await _business(uow.session, actor)
        return [PlanOut.model_validate(p) for p in await plans.all(uow.session, public_only=True)]


@use_case(Permission.plan_manage, audit="plan.chosen")
async def choose_plan(actor: Actor, *, code: str) -> PlanStatusOut:
    """Move to a plan on offer. A free one applies at once; one with a fee once it is paid (until then
    the default plan applies). Choosing the current plan again changes nothing."""
    async with unit_of_work(actor) as uow:
        tenant = await _business(uow.session, actor)
        plan = await plans.by_code(uow.session, code)
        if not plan.public and plan.id != tenant.plan_id:
            raise NotFound(f"No plan {code!r}. List the plans with GET /api/plan/options.")
        before = await plans.state(uow.session, tenant)
        if before.chosen.id != plan.id:
            await plans.choose(uow.session, tenant, plan)
            if plan.monthly_fee_cents:
                tenant.plan_paid_until = None  # another plan's paid period does not carry over
        await uow.audit("plan.chosen", target=plan.code, previous=before.chosen.code)
        return await status_of(uow.session, tenant)


@use_case(
    Permission.plan_manage,
    recorded_by="a plan.payment_requested audit row, written with the top-up payment it names",
)
async def pay_plan_by_mpesa(actor: Actor, *, phone: str | None = None) -> PaymentOut:
    """Pay the chosen plan by M-Pesa: an STK push of what it costs now (whole shillings, rounded up)
    to `phone` (default: the business phone) through the platform's own app. The money lands in the
    wallet and pays the plan from there in the same transaction (core/plans/subscribers.py); if the
    plan cannot be paid by then, it stays in the wallet and the owner is told."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await _business(uow.session, actor)
        state = await plans.state(uow.session, tenant)
        owing = billing.due(state.chosen, tenant)
        if owing is None:
            raise Conflict(f"The {state.chosen.name} plan is free: there is nothing to pay.")
        code = state.chosen.code

    async def mark(session: AsyncSession, row: Tenant, payment: Payment) -> None:
        row.plan_payment_id = payment.id
        await record(
            session,
            action="plan.payment_requested",
            tenant_id=row.id,
            user_id=actor.audit_user_id,
            target=code,
            detail={**actor.audit_detail(), "payment_id": str(payment.id), "amount": payment.amount},
        )

    return await request_wallet_topup(
        tenant_id=tenant_id,
        amount=mpesa_amount(owing.amount_cents),
        phone=phone,
        initiated_by=actor.user_id,
        description="lipapush plan",
        on_created=mark,
    )


@use_case(Permission.plan_manage, audit="plan.paid")
async def pay_plan(actor: Actor) -> PlanPaid:
    """Pay the chosen plan from the wallet: the rest of this month, or the next one once this one is
    paid. Its quota applies from this moment."""
    async with unit_of_work(actor) as uow:
        tenant = await _business(uow.session, actor)
        state = await plans.state(uow.session, tenant)
        if state.chosen.monthly_fee_cents == 0:
            raise Conflict(f"The {state.chosen.name} plan is free: there is nothing to pay.")
        owing = await billing.pay_from_wallet(
            uow.session, tenant=tenant, plan=state.chosen, settings=runtime().settings
        )
        await uow.audit(
            "plan.paid",
            target=state.chosen.code,
            amount_cents=owing.amount_cents,
            period_start=owing.start.isoformat(),
            period_end=owing.end.isoformat(),
        )
        return PlanPaid(
            status=await status_of(uow.session, tenant),
            amount_cents=owing.amount_cents,
            period_start=owing.start,
            period_end=owing.end,
        )
