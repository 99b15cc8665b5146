"""Renewals at the turn of the month: a wallet that holds the fee pays the next month and the owner is
told; one that does not lets the default plan apply and the owner is told once that month."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core.access.actor import Actor, Via
from core.db import utcnow
from core.notify.models import Notification
from core.plans import use_cases_admin
from core.plans.jobs import renew_plans
from core.plans.schemas import PlanIn
from core.plans.service import month_of, next_month_start, plans
from core.runtime import unit_of_work
from core.tenants.models import Tenant
from tests.conftest import LiveServer
from tests.support.factories import fund_wallet, letters_token, make_tenant, wallet_state

ADMIN = Actor.system(via=Via.cli)


async def lapsed_paid_plan(tenant: Tenant, fee_cents: int) -> str:
    code = f"n-{letters_token()}"
    await use_cases_admin.save_plan(
        ADMIN, PlanIn(code=code, name="Renewing", monthly_fee_cents=fee_cents, live_pushes_per_month=1000)
    )
    # paid until a moment ago: its month is over
    await use_cases_admin.assign_plan(ADMIN, tenant.id, code=code, paid_until=utcnow() - timedelta(seconds=5))
    return code


async def messages(tenant: Tenant) -> list[tuple[str, str]]:
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(Notification).where(Notification.tenant_id == tenant.id).order_by(Notification.id)
        )
        return [(n.kind, n.body) for n in rows if n.kind.startswith("plan_")]


async def test_a_funded_wallet_renews_and_an_empty_one_falls_back_once(server: LiveServer) -> None:
    funded, _ = await make_tenant(name="Funded Renewal")
    empty, _ = await make_tenant(name="Empty Renewal")
    await lapsed_paid_plan(funded, 50_000)
    await lapsed_paid_plan(empty, 50_000)
    await fund_wallet(funded, 100_000)

    await renew_plans()
    await renew_plans()  # again: nothing more is charged or said

    now = utcnow()
    async with unit_of_work(readonly=True) as session:
        f = await session.get(Tenant, funded.id)
        e = await session.get(Tenant, empty.id)
        assert f is not None and e is not None
        f_state, e_state = await plans.state(session, f), await plans.state(session, e)
    assert f.plan_paid_until == next_month_start(now)
    assert (f_state.unpaid, e_state.unpaid, e_state.effective.code) == (False, True, "free")
    assert e.plan_reminded == month_of(now)
    paid = 100_000 - (await wallet_state(funded))[0]
    assert 0 < paid <= 50_000
    [(kind, body)] = await messages(funded)
    assert kind == "plan_renewed" and body.startswith(
        "Your Renewing plan was renewed from your wallet until "
    )
    [(kind, body)] = await messages(empty)
    assert kind == "plan_unpaid"
    assert body.startswith("Your Renewing plan could not be renewed: The Renewing plan costs KES ")
    assert "Until it is paid the Free plan applies." in body
