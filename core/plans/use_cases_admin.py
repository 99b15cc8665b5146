"""The platform's plan catalogue (create, change) and who is on which plan, for the admin and the
operator's CLI. Changing a plan's limits applies to every business on it from its next push."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.errors import Conflict
from core.plans.models import ApiPlan
from core.plans.schemas import PlanIn, PlanOut, PlanStatusOut
from core.plans.service import plans
from core.plans.use_cases import NOT_FOR_HOTSPOTS, status_of
from core.tenants.models import Tenant, TenantKind
from core.tenants.service import tenants


@use_case(Permission.platform_admin, query=True)
async def list_plans(actor: Actor) -> list[tuple[PlanOut, int]]:
    """Every plan, cheapest first, with how many businesses chose it (the default plan also counts the
    businesses that never chose one)."""
    async with unit_of_work(actor, readonly=True) as uow:
        rows = await plans.all(uow.session)
        counts = dict(
            (await uow.session.execute(select(Tenant.plan_id, func.count()).group_by(Tenant.plan_id))).all()
        )
        default = next((p for p in rows if p.is_default), None)
        return [
            (
                PlanOut.model_validate(p),
                int(counts.get(p.id, 0)) + (int(counts.get(None, 0)) if p is default else 0),
            )
            for p in rows
        ]


@use_case(Permission.platform_admin, audit="plan.saved")
async def save_plan(actor: Actor, data: PlanIn) -> PlanOut:
    """Create the plan `data.code`, or change it when it exists (its code stays)."""
    async with unit_of_work(actor) as uow:
        plan = await uow.session.scalar(select(ApiPlan).where(ApiPlan.code == data.code))
        created = plan is None
        if plan is None:
            plan = ApiPlan(code=data.code)
            uow.session.add(plan)
        for field in (
            "name",
            "description",
            "monthly_fee_cents",
            "live_pushes_per_month",
            "pushes_per_key_per_minute",
        ):
            setattr(plan, field, getattr(data, field))
        if plan.is_default and not data.public:
            raise Conflict("The default plan is the one every new business starts on: it stays on offer.")
        plan.public = data.public
        try:
            async with uow.session.begin_nested():
                await uow.session.flush()
        except IntegrityError:
            raise Conflict(f"A plan {data.code!r} was made a moment ago: change it instead.") from None
        await uow.audit("plan.saved", target=plan.code, created=created, **data.model_dump(exclude={"code"}))
        return PlanOut.model_validate(plan)


@use_case(Permission.platform_admin, audit="plan.assigned")
async def assign_plan(
    actor: Actor, tenant_id: uuid.UUID, *, code: str, paid_until: datetime | None = None
) -> PlanStatusOut:
    """Put a business on a plan (hidden ones too), optionally paid until a moment (a deal agreed
    outside the wallet). The audit row is the business's too (its trail shows who moved it)."""
    async with unit_of_work(actor.acting_for(tenant_id)) as uow:
        tenant = await tenants.get(uow.session, tenant_id)
        if tenant.kind is not TenantKind.business:
            raise Conflict(NOT_FOR_HOTSPOTS)
        plan = await plans.by_code(uow.session, code)
        await plans.choose(uow.session, tenant, plan)
        tenant.plan_paid_until = paid_until
        await uow.audit(
            "plan.assigned",
            target=plan.code,
            tenant=str(tenant.id),
            paid_until=paid_until.isoformat() if paid_until else None,
        )
        return await status_of(uow.session, tenant)
