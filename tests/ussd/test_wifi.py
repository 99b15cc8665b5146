"""Buy WiFi on a feature phone: provider number → where you are → plan → M-Pesa → voucher by SMS,
provisioned on the (stand-in) router first."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from core.hotspot.models import Plan, PlanKind, Voucher, VoucherStatus
from core.hotspot.routers import routers
from core.hotspot.schemas import RouterIn
from core.runtime import runtime, unit_of_work
from core.tenants.models import TenantKind
from sim.africastalking import UssdGateway
from sim.routeros import RouterSim
from tests.support.factories import make_tenant
from tests.support.waiting import wait_until
from tests.ussd.conftest import intl, sms_to


@pytest.fixture
async def sim() -> AsyncIterator[RouterSim]:
    async with RouterSim(username="api", password="router-pw") as s:
        yield s


async def test_buy_wifi_by_ussd(gateway: UssdGateway, at: httpx.AsyncClient, sim: RouterSim) -> None:
    tenant, owner = await make_tenant(name="Kibera Net", tenant_kind=TenantKind.hotspot)
    async with unit_of_work() as session:
        for name in ("Gate A", "Block 7"):
            await routers.add(
                session,
                tenant_id=tenant.id,
                data=RouterIn(
                    name=name, host="127.0.0.1", port=sim.port, username="api", password="router-pw"
                ),
                box=runtime().secrets,
                by=owner.id,
            )
        session.add(
            Plan(tenant_id=tenant.id, name="1 hour", kind=PlanKind.time, price=20, validity_minutes=60)
        )
        session.add(
            Plan(tenant_id=tenant.id, name="24 hours", kind=PlanKind.time, price=50, validity_minutes=1440)
        )
    phone = f"07{random.randint(10_000, 99_999)}678"[:6] + "5678"
    s = gateway.dial(intl(phone))
    await s.start()
    await s.send("1")
    where = await s.send(str(tenant.business_number))
    assert where.text == "Buy WiFi: Kibera Net\nWhere are you?\n1. Block 7\n2. Gate A\n0 Back 00 Home"
    menu = await s.send("2")
    assert menu.text == "Pick a WiFi plan:\n1. 1 hour KES 20\n2. 24 hours KES 50\n0 Back 00 Home"
    confirm = await s.send("2")
    assert confirm.text.startswith(f"Pay KES 50 for 24 hours (1 day) from {phone}?\n1. Pay\n2. Cancel")
    end = await s.send("1")
    assert (end.kind, end.text) == (
        "END",
        "Check your phone: enter your M-Pesa PIN to pay KES 50. The voucher comes by SMS.",
    )

    async def provisioned() -> Voucher | None:
        async with unit_of_work(readonly=True) as session:
            v = await session.scalar(select(Voucher).where(Voucher.tenant_id == tenant.id))
        return v if v is not None and v.status is VoucherStatus.provisioned else None

    async def ready() -> bool:
        return await provisioned() is not None

    await wait_until(ready)
    v = await provisioned()
    assert v is not None and (v.plan_name, v.price, v.phone) == ("24 hours", 50, "254" + phone[1:])
    assert v.code in {str(u["name"]) for u in sim.users()}

    async def texted() -> bool:
        return bool(await sms_to(at, phone))

    await wait_until(texted)
    [sms] = await sms_to(at, phone)
    assert sms["message"].startswith(f"Kibera Net: WiFi voucher {v.code}. 24 hours, valid 1 day")
