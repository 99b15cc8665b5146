"""Renewals: at the turn of a Nairobi month a plan with a fee is paid again from the wallet when the
wallet holds enough; when it does not, the default plan applies until it is paid and the owner is told
once that month (Telegram, else SMS). A business that never paid its plan is not charged by itself."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import or_, select

from core.audit.service import record
from core.db import Scope, utcnow
from core.errors import LipapushError
from core.jobs.registry import job
from core.notify.service import notify
from core.plans import billing
from core.plans.models import ApiPlan
from core.plans.service import month_of, plans
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant

log = logging.getLogger(__name__)
FIND_DUE = Scope.platform("plans: businesses whose paid plan ran out")


@job("plans.renew", max_retries=3)
async def renew_plans() -> None:
    now = utcnow()
    month = month_of(now)
    async with unit_of_work(readonly=True, scope=FIND_DUE) as session:
        ids = list(
            await session.scalars(
                select(Tenant.id)
                .join(ApiPlan, ApiPlan.id == Tenant.plan_id)
                .where(
                    ApiPlan.monthly_fee_cents > 0,
                    Tenant.plan_paid_until.is_not(None),
                    Tenant.plan_paid_until <= now,
                    or_(Tenant.plan_reminded.is_(None), Tenant.plan_reminded != month),
                )
            )
        )
    for tenant_id in ids:
        await _renew(tenant_id, month)


async def _renew(tenant_id: uuid.UUID, month: str) -> None:
    async with unit_of_work(scope=Scope.tenant(tenant_id)) as session:
        tenant = await session.get(Tenant, tenant_id, with_for_update=True)
        if tenant is None or tenant.plan_paid_until is None or tenant.plan_paid_until > utcnow():
            return  # paid meanwhile
        state = await plans.state(session, tenant)
        try:
            async with session.begin_nested():
                owing = await billing.pay_from_wallet(
                    session, tenant=tenant, plan=state.chosen, settings=runtime().settings
                )
        except LipapushError as exc:
            tenant.plan_reminded = month
            await notify.to_owner(
                session,
                tenant=tenant,
                kind="plan_unpaid",
                body=f"Your {state.chosen.name} plan could not be renewed: {exc.message} Until it is paid "
                f"the {state.effective.name} plan applies. Pay it in the web panel (Settings → Plan) or "
                "with POST /api/plan/pay.",
            )
            return
        await record(
            session,
            action="plan.paid",
            tenant_id=tenant.id,
            target=state.chosen.code,
            detail={"renewal": True, "amount_cents": owing.amount_cents, "period_end": owing.end.isoformat()},
        )
        await notify.to_owner(
            session,
            tenant=tenant,
            kind="plan_renewed",
            body=f"Your {state.chosen.name} plan was renewed from your wallet until "
            f"{billing.last_day(owing)}.",
        )
