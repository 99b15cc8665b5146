"""A payer who types one of a business's tills pays into that till, not the business's primary one."""

from __future__ import annotations

import random

from sqlalchemy import select

from core.auth.models import User
from core.payments.models import Payment
from core.runtime import runtime, unit_of_work
from core.tenants.channels import channels
from core.tenants.models import ChannelKind, Environment, MpesaChannel, Tenant
from core.tenants.service import tenants
from sim.africastalking import UssdGateway
from tests.support.factories import channel_in, make_tenant
from tests.ussd.conftest import intl


def till() -> str:
    return str(random.randint(4_000_000, 4_999_999))


async def add_till(tenant: Tenant, owner: User, *, name: str, number: str, verified: bool) -> MpesaChannel:
    async with unit_of_work() as session:
        row = await session.get(Tenant, tenant.id)
        assert row is not None
        channel = await channels.add(
            session,
            tenant=row,
            name=name,
            data=channel_in(kind=ChannelKind.till, business_short_code=number, till_number=number),
            box=runtime().secrets,
            by=owner.id,
        )
        if verified:
            await tenants.mark_verified(session, channel=channel)
        return channel


async def test_the_till_a_payer_types_is_the_one_paid(gateway: UssdGateway) -> None:
    tenant, owner = await make_tenant(name="Duka la Tawi", environment=Environment.simulator)
    number = till()
    branch = await add_till(tenant, owner, name="Westlands till", number=number, verified=True)
    s = gateway.dial(intl(f"07{random.randint(10_000, 99_999)}678"))
    await s.start()
    await s.send("1")
    assert (await s.send(number)).text == "Pay Duka la Tawi\nAmount in KES:"
    await s.send("120")
    end = await s.send("1")
    assert (end.kind, end.text) == (
        "END",
        "Check your phone: enter your M-Pesa PIN to pay KES 120 to Duka la Tawi.",
    )

    # by its business number the primary channel is paid, as before
    s = gateway.dial(intl(f"07{random.randint(10_000, 99_999)}678"))
    await s.start()
    await s.send("1")
    await s.send(str(tenant.business_number))
    await s.send("130")
    await s.send("1")
    async with unit_of_work(readonly=True) as session:
        primary = await tenants.get_channel(session, tenant.id)
        rows = (
            await session.execute(
                select(Payment.amount, Payment.channel_id)
                .where(Payment.tenant_id == tenant.id)
                .order_by(Payment.amount)
            )
        ).all()
    assert primary is not None
    assert [tuple(r) for r in rows] == [(120, branch.id), (130, primary.id)]


async def test_an_unverified_till_is_not_found(gateway: UssdGateway) -> None:
    tenant, owner = await make_tenant(name="Duka Mpya", environment=Environment.simulator)
    number = till()
    await add_till(tenant, owner, name="New till", number=number, verified=False)
    s = gateway.dial(intl(f"07{random.randint(10_000, 99_999)}678"))
    await s.start()
    await s.send("1")
    screen = await s.send(number)
    assert (screen.kind, screen.text) == (
        "CON",
        f"No business has the number {number}. Check the number and try again.\nEnter the business number:",
    )
    async with unit_of_work(readonly=True) as session:
        assert await session.scalar(select(Payment.id).where(Payment.tenant_id == tenant.id)) is None
