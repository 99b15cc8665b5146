"""USSD WiFi sales stop when a provider's free trial ends unsubscribed, as for a lapsed subscription:
the buyer is told at the Pay step, and a voucher sold during the trial stays on the router."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.db import utcnow
from core.hotspot.models import Plan, PlanKind, Voucher, VoucherStatus
from core.hotspot.routers import routers
from core.hotspot.schemas import RouterIn
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant, TenantKind
from sim.africastalking import UssdGateway
from sim.routeros import RouterSim
from tests.support.factories import make_tenant
from tests.support.waiting import wait_until
from tests.ussd.conftest import intl


@pytest.fixture
async def sim() -> AsyncIterator[RouterSim]:
    async with RouterSim(username="api", password="router-pw") as s:
        yield s


def buyer() -> str:
    return f"07{random.randint(10_000, 99_999)}678"[:6] + "5678"


async def test_trial_end_stops_ussd_sales(gateway: UssdGateway, sim: RouterSim) -> None:
    tenant, owner = await make_tenant(name="Trial Net", tenant_kind=TenantKind.hotspot)
    async with unit_of_work() as session:
        await routers.add(
            session,
            tenant_id=tenant.id,
            data=RouterIn(
                name="Gate A", host="127.0.0.1", port=sim.port, username="api", password="router-pw"
            ),
            box=runtime().secrets,
            by=owner.id,
        )
        session.add(
            Plan(tenant_id=tenant.id, name="1 hour", kind=PlanKind.time, price=20, validity_minutes=60)
        )

    async def dial_to_pay() -> tuple[str, str]:
        s = gateway.dial(intl(buyer()))
        await s.start()
        await s.send("1")
        await s.send(str(tenant.business_number))
        await s.send("1")  # Gate A
        await s.send("1")  # 1 hour
        end = await s.send("1")  # Pay
        return end.kind, end.text

    assert await dial_to_pay() == (
        "END",
        "Check your phone: enter your M-Pesa PIN to pay KES 20. The voucher comes by SMS.",
    )

    async def provisioned() -> Voucher | None:
        async with unit_of_work(readonly=True) as session:
            v = await session.scalar(select(Voucher).where(Voucher.tenant_id == tenant.id))
        return v if v is not None and v.status is VoucherStatus.provisioned else None

    async def ready() -> bool:
        return await provisioned() is not None

    await wait_until(ready)

    async with unit_of_work() as session:
        t = await session.get(Tenant, tenant.id)
        assert t is not None
        t.trial_until = t.subscription_until = utcnow() - timedelta(minutes=1)
    assert await dial_to_pay() == (
        "END",
        "Buying WiFi here is unavailable right now. Vouchers already bought still work.",
    )
    sold = await provisioned()
    assert sold is not None and sold.code in {str(u["name"]) for u in sim.users()}
